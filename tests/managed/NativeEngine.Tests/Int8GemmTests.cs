using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>The int8 GEMM (exact int32, and f32 with fused dequantization) and the quantized linear layer.</summary>
public sealed class Int8GemmTests
{
    public static TheoryData<SimdLevel, int, int, int> Shapes()
    {
        var data = new TheoryData<SimdLevel, int, int, int>();
        foreach (var simd in new[] { SimdLevel.Scalar, SimdLevel.Auto })
        {
            data.Add(simd, 1, 1, 1);
            data.Add(simd, 5, 3, 33);       // K not a multiple of any SIMD width
            data.Add(simd, 16, 32, 64);
            data.Add(simd, 37, 19, 300);    // odd M and N
            data.Add(simd, 2, 70, 1024);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Int32GemmIsExact(SimdLevel simd, int m, int n, int k)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(m, n, k));
        var a = TestData.Int8(random, m * k);
        var b = TestData.Int8(random, n * k);
        // The extremes of the full int8 range, including -128 * -128.
        a[0] = sbyte.MinValue;
        b[0] = sbyte.MinValue;
        a[^1] = sbyte.MaxValue;
        b[^1] = sbyte.MinValue;

        var c = Ops.MatMulInt8(Tensor.FromArray<sbyte>(context, a, m, k), Tensor.FromArray<sbyte>(context, b, n, k));

        Assert.Equal(Dtype.I32, c.Dtype);
        Assert.Equal([(long)m, n], c.Shape);
        Assert.Equal(Reference.GemmInt8(a, b, m, n, k).Select(v => (int)v).ToArray(), c.ToArray<int>());
    }

    [Theory]
    [InlineData(SimdLevel.Scalar)]
    [InlineData(SimdLevel.Auto)]
    public void TheLargestKDoesNotOverflow(SimdLevel simd)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        const int k = NativeConstants.Int8GemmMaxK;
        var a = Tensor.Create(context, Dtype.I8, 2, k);
        var b = Tensor.Create(context, Dtype.I8, 1, k);
        a.Fill(-128);
        b.Fill(-128);

        var c = Ops.MatMulInt8(a, b);

        Assert.Equal([k * 128 * 128, k * 128 * 128], c.ToArray<int>());
    }

    [Fact]
    public void AKAboveTheLimitIsRefused()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        const int k = NativeConstants.Int8GemmMaxK + 1;
        var a = Tensor.Create(context, Dtype.I8, 1, k);
        var b = Tensor.Create(context, Dtype.I8, 1, k);

        var e = Assert.Throws<NativeEngineException>(() => Ops.MatMulInt8(a, b));

        Assert.StartsWith("ne_gemm_int8:", e.NativeMessage);
        Assert.Equal(2, scope.Count);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Float32GemmFusesTheDequantization(SimdLevel simd, int m, int n, int k)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(k, m, n));
        var a = TestData.Int8(random, m * k);
        var b = TestData.Int8(random, n * k);
        var aScales = TestData.Floats(random, m, 0.01f, 0.02f);
        var bScales = TestData.Floats(random, n, 0.01f, 0.02f);
        var bias = TestData.Floats(random, n, 2f);
        var acc = Reference.GemmInt8(a, b, m, n, k);
        var ta = Tensor.FromArray<sbyte>(context, a, m, k);
        var tb = Tensor.FromArray<sbyte>(context, b, n, k);
        var tas = Tensor.FromArray<float>(context, aScales);
        var tbs = Tensor.FromArray<float>(context, bScales);

        var withBias = Ops.MatMulInt8(ta, tb, tas, tbs, Tensor.FromArray<float>(context, bias));
        var withoutBias = Ops.MatMulInt8(ta, tb, tas, tbs);

        TestData.AssertClose(withBias.ToArray<float>(), Reference.Dequantize(acc, aScales, bScales, bias, m, n), 1e-6, "c");
        TestData.AssertClose(withoutBias.ToArray<float>(), Reference.Dequantize(acc, aScales, bScales, null, m, n), 1e-6, "c");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void LinearInt8MatchesQuantizeThenGemm(SimdLevel simd, int m, int n, int k)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(n, k, m));
        var x = TestData.Floats(random, m * k, 3f);
        var weights = TestData.Floats(random, n * k, 0.5f);
        var bias = TestData.Floats(random, n, 1f);
        var (w, wScales) = Reference.Quantize(weights, n, k, QuantAxis.PerRow);
        var (xq, xScales) = Reference.Quantize(x, m, k, QuantAxis.PerRow);
        var expected = Reference.Dequantize(Reference.GemmInt8(xq, w, m, n, k), xScales, wScales, bias, m, n);
        var tw = Tensor.FromArray<sbyte>(context, w, n, k);
        var tws = Tensor.FromArray<float>(context, wScales);

        var y = Ops.LinearInt8(Tensor.FromArray<float>(context, x, m, k), tw, tws, Tensor.FromArray<float>(context, bias));

        Assert.Equal([(long)m, n], y.Shape);
        TestData.AssertClose(y.ToArray<float>(), expected, 1e-6, "y");
    }

    [Fact]
    public void LinearWithoutBiasAndThinWrapperAgree()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(9);
        var x = Tensor.FromArray<float>(context, TestData.Floats(random, 4 * 24), 4, 24);
        var (w, wScales) = Ops.Quantize(Tensor.FromArray<float>(context, TestData.Floats(random, 6 * 24), 6, 24));
        var y = Tensor.Create(context, Dtype.F32, 4, 6);
        Ops.LinearInt8(context, x, w, wScales, null, y);

        // The same through its parts: quantize x per row, GEMM with fused dequantization.
        var (xq, xScales) = Ops.Quantize(x);
        var parts = Ops.MatMulInt8(xq, w, xScales, wScales);

        TestData.AssertClose(y.ToArray<float>(), parts.ToArray<float>().Select(v => (double)v).ToArray(), 1e-6, "y");
    }
}
