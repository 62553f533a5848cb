using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>Int8 absmax quantization and dequantization: exact against the header's formulas.</summary>
public sealed class QuantizationTests
{
    public static TheoryData<SimdLevel, QuantAxis, int, int> Cases()
    {
        var data = new TheoryData<SimdLevel, QuantAxis, int, int>();
        foreach (var simd in new[] { SimdLevel.Scalar, SimdLevel.Auto })
        {
            foreach (var axis in new[] { QuantAxis.PerRow, QuantAxis.PerColumn })
            {
                data.Add(simd, axis, 1, 1);
                data.Add(simd, axis, 3, 5);
                data.Add(simd, axis, 16, 64);
                data.Add(simd, axis, 33, 257);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void QuantizeAndDequantizeAreExact(SimdLevel simd, QuantAxis axis, int rows, int cols)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(rows, cols, (long)axis));
        var x = TestData.Floats(random, rows * cols, 4f);
        // An all-zero group (scale 0, q 0) where the shape has room for one.
        if (rows > 1 && cols > 1)
        {
            for (var i = 0; i < (axis == QuantAxis.PerRow ? cols : rows); i++)
            {
                x[axis == QuantAxis.PerRow ? cols + i : i * cols + 1] = 0f;
            }
        }
        var (expectedQ, expectedScales) = Reference.Quantize(x, rows, cols, axis);

        var (q, scales) = Ops.Quantize(Tensor.FromArray<float>(context, x, rows, cols), axis);

        Assert.Equal(Dtype.I8, q.Dtype);
        Assert.Equal([(long)(axis == QuantAxis.PerRow ? rows : cols)], scales.Shape);
        Assert.Equal(expectedScales, scales.ToArray<float>());
        Assert.Equal(expectedQ, q.ToArray<sbyte>());
        var back = Ops.Dequantize(q, scales, axis);
        Assert.Equal(Reference.Dequantize(expectedQ, expectedScales, rows, cols, axis), back.ToArray<float>());
    }

    [Fact]
    public void TiesRoundHalfToEvenAndTheRangeIsSymmetric()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        // absmax 127: 127 / absmax == 1, so q is round_half_even(x) exactly.
        float[] x = [127f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f, -127f, -0.5f];

        var (q, scales) = Ops.Quantize(Tensor.FromArray<float>(context, x, 1, 8));

        Assert.Equal([1f], scales.ToArray<float>());
        Assert.Equal([127, 2, 4, -2, 0, 2, -127, 0], q.ToArray<sbyte>());
    }

    [Fact]
    public void DequantizeAcceptsTheFullInt8Range()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var q = Tensor.FromArray<sbyte>(context, [-128, -127, 0, 127], 2, 2);
        var scales = Tensor.FromArray<float>(context, [0.5f, 2f]);

        Assert.Equal([-64f, -63.5f, 0f, 254f], Ops.Dequantize(q, scales).ToArray<float>());
        Assert.Equal([-64f, -254f, 0f, 254f], Ops.Dequantize(q, scales, QuantAxis.PerColumn).ToArray<float>());
    }

    [Fact]
    public void ScalesOfTheWrongLengthAreAShapeMismatch()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var x = Tensor.Create(context, Dtype.F32, 3, 5);
        var q = Tensor.Create(context, Dtype.I8, 3, 5);
        var scales = Tensor.Create(context, Dtype.F32, 5);

        var e = Assert.Throws<NativeEngineException>(() => Ops.QuantizeInt8(context, QuantAxis.PerRow, x, q, scales));

        Assert.Equal(Status.ShapeMismatch, e.Status);
        Assert.Contains("'scales'", e.NativeMessage);
    }
}
