using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>The f32 GEMM through C#: transposes, batching with a shared operand, and beta.</summary>
public sealed class GemmTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<SimdLevel, bool, bool> Transposes()
    {
        var data = new TheoryData<SimdLevel, bool, bool>();
        foreach (var simd in new[] { SimdLevel.Scalar, SimdLevel.Auto })
        {
            foreach (var transposeA in new[] { false, true })
            {
                foreach (var transposeB in new[] { false, true })
                {
                    data.Add(simd, transposeA, transposeB);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Transposes))]
    public void MatMulMatchesTheReference(SimdLevel simd, bool transposeA, bool transposeB)
    {
        const int m = 13, n = 21, k = 37;
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(m, n, k, transposeA ? 1 : 0, transposeB ? 1 : 0));
        var a = TestData.Floats(random, m * k);
        var b = TestData.Floats(random, k * n);

        var c = Ops.MatMul(
            transposeA ? Tensor.FromArray<float>(context, a, k, m) : Tensor.FromArray<float>(context, a, m, k),
            transposeB ? Tensor.FromArray<float>(context, b, n, k) : Tensor.FromArray<float>(context, b, k, n),
            transposeA, transposeB);

        Assert.Equal([m, n], c.Shape);
        TestData.AssertClose(c.ToArray<float>(), Reference(a, b, m, n, k, transposeA, transposeB), Tolerance, "c");
    }

    [Fact]
    public void ABatchSharesA2DWeightAndBetaAccumulates()
    {
        const int batch = 3, m = 5, n = 6, k = 7;
        using var context = TestData.CreateContext(SimdLevel.Auto);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(batch, m, n, k));
        var x = TestData.Floats(random, batch * m * k);
        var w = TestData.Floats(random, n * k);
        var previous = TestData.Floats(random, batch * m * n);
        var c = Tensor.FromArray<float>(context, previous, batch, m, n);

        Ops.Gemm(context, Tensor.FromArray<float>(context, x, batch, m, k), Tensor.FromArray<float>(context, w, n, k), c,
            transposeB: true, alpha: 2f, beta: 0.5f);

        var expected = new double[batch * m * n];
        for (var i = 0; i < batch; i++)
        {
            var product = Reference(x[(i * m * k)..((i + 1) * m * k)], w, m, n, k, transposeA: false, transposeB: true);
            for (var j = 0; j < m * n; j++)
            {
                expected[i * m * n + j] = 2.0 * product[j] + 0.5 * previous[i * m * n + j];
            }
        }
        TestData.AssertClose(c.ToArray<float>(), expected, Tolerance, "c");
    }

    [Fact]
    public void InnerDimensionsThatDisagreeAreRefusedNamingBothShapes()
    {
        using var context = TestData.CreateContext(SimdLevel.Auto);
        using var scope = new TensorScope();
        var a = Tensor.Create(context, Dtype.F32, 4, 5);
        var b = Tensor.Create(context, Dtype.F32, 6, 3);

        var e = Assert.Throws<NativeEngineException>(() => Ops.MatMul(a, b));

        Assert.Equal(Status.ShapeMismatch, e.Status);
        Assert.Contains("[4, 5]", e.Message);
        Assert.Contains("[6, 3]", e.Message);
    }

    private static double[] Reference(float[] a, float[] b, int m, int n, int k, bool transposeA, bool transposeB)
    {
        var c = new double[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var sum = 0.0;
                for (var p = 0; p < k; p++)
                {
                    var aValue = transposeA ? a[p * m + i] : a[i * k + p];
                    var bValue = transposeB ? b[j * k + p] : b[p * n + j];
                    sum += (double)aValue * bValue;
                }
                c[i * n + j] = sum;
            }
        }
        return c;
    }
}
