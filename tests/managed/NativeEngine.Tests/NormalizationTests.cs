using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>LayerNorm and RMSNorm, forward and backward, against the double-precision reference.</summary>
public sealed class NormalizationTests
{
    private const float Epsilon = 1e-5f;
    private const double ForwardTolerance = 2e-5;
    private const double BackwardTolerance = 5e-5;

    public static TheoryData<SimdLevel, bool, long[], bool> Cases()
    {
        var data = new TheoryData<SimdLevel, bool, long[], bool>();
        foreach (var simd in new[] { SimdLevel.Scalar, SimdLevel.Auto })
        {
            foreach (var rms in new[] { false, true })
            {
                data.Add(simd, rms, [1, 1], false);        // one channel: the variance is 0
                data.Add(simd, rms, [4, 7], false);        // C not a multiple of any SIMD width
                data.Add(simd, rms, [2, 3, 33], true);     // rank 3: leading dimensions are rows
                data.Add(simd, rms, [17, 1024], true);     // wide rows, residual
                data.Add(simd, rms, [64, 8], false);       // many short rows (threaded)
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesTheReference(SimdLevel simd, bool rms, long[] shape, bool withResidual)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var (rows, cols) = RowsAndCols(shape);
        var random = new Random(TestData.Seed(rows, cols, rms ? 1 : 0, withResidual ? 1 : 0));
        var x = TestData.Floats(random, rows * cols, 3f, 0.5f);
        var residual = withResidual ? TestData.Floats(random, rows * cols, 1f) : null;
        var gamma = TestData.Floats(random, cols, 0.5f, 1f);
        var beta = rms ? null : TestData.Floats(random, cols, 0.5f);
        var expected = Reference.NormForwardPass(x, residual, gamma, beta, rows, cols, Epsilon, rms);

        var (y, sum, mean, rstd) = RunForward(context, rms, shape, x, residual, gamma, beta);

        TestData.AssertClose(y.ToArray<float>(), expected.Y, ForwardTolerance, "y");
        TestData.AssertClose(rstd.ToArray<float>(), expected.Rstd, ForwardTolerance, "rstd");
        if (mean is not null)
        {
            TestData.AssertClose(mean.ToArray<float>(), expected.Mean, ForwardTolerance, "mean");
        }
        if (sum is not null)
        {
            // s = x + residual is a single f32 addition: exact.
            Assert.Equal(expected.Sum.Select(v => (float)v).ToArray(), sum.ToArray<float>());
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardMatchesTheReference(SimdLevel simd, bool rms, long[] shape, bool withDs)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var (rows, cols) = RowsAndCols(shape);
        var random = new Random(TestData.Seed(cols, rows, rms ? 1 : 0, withDs ? 1 : 0));
        var x = TestData.Floats(random, rows * cols, 2f, -0.25f);
        var gamma = TestData.Floats(random, cols, 0.5f, 1f);
        var dy = TestData.Floats(random, rows * cols, 1f);
        var ds = withDs ? TestData.Floats(random, rows * cols, 1f) : null;
        var (_, _, mean, rstd) = RunForward(context, rms, shape, x, null, gamma, rms ? null : new float[cols]);
        var meanValues = mean is null ? new double[rows] : Array.ConvertAll(mean.ToArray<float>(), v => (double)v);
        var rstdValues = Array.ConvertAll(rstd.ToArray<float>(), v => (double)v);
        var expected = Reference.NormBackwardPass(dy, ds, x, gamma, meanValues, rstdValues, rows, cols, rms);

        var (dx, dgamma, dbeta) = RunBackward(context, rms, shape, x, gamma, mean, rstd, dy, ds, accumulate: false);

        TestData.AssertClose(dx.ToArray<float>(), expected.Dx, BackwardTolerance, "dx");
        TestData.AssertClose(dgamma.ToArray<float>(), expected.Dgamma, BackwardTolerance, "dgamma");
        if (dbeta is not null)
        {
            TestData.AssertClose(dbeta.ToArray<float>(), expected.Dbeta, BackwardTolerance, "dbeta");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BackwardAccumulatesIntoTheParameterGradientsWhenAsked(bool rms)
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        const int rows = 5, cols = 12;
        var random = new Random(7);
        var x = TestData.Floats(random, rows * cols, 1f);
        var gamma = TestData.Floats(random, cols, 0.5f, 1f);
        var dy = TestData.Floats(random, rows * cols, 1f);
        var (_, _, mean, rstd) = RunForward(context, rms, [rows, cols], x, null, gamma, rms ? null : new float[cols]);

        var (_, once, onceBeta) = RunBackward(context, rms, [rows, cols], x, gamma, mean, rstd, dy, null, accumulate: false);
        var (_, twice, twiceBeta) = RunBackward(context, rms, [rows, cols], x, gamma, mean, rstd, dy, null, accumulate: true,
            dgammaStart: once.ToArray<float>(), dbetaStart: onceBeta?.ToArray<float>());

        var expected = once.ToArray<float>().Select(v => (double)(v + v)).ToArray();
        TestData.AssertClose(twice.ToArray<float>(), expected, 1e-6, "dgamma");
        if (onceBeta is not null)
        {
            TestData.AssertClose(twiceBeta!.ToArray<float>(), onceBeta.ToArray<float>().Select(v => (double)(v + v)).ToArray(), 1e-6, "dbeta");
        }
    }

    [Fact]
    public void ParameterGradientsDoNotDependOnTheThreadCount()
    {
        const int rows = 301, cols = 40;
        var random = new Random(11);
        var x = TestData.Floats(random, rows * cols, 2f);
        var gamma = TestData.Floats(random, cols, 0.5f, 1f);
        var dy = TestData.Floats(random, rows * cols, 1f);

        float[] Gradients(int threads)
        {
            using var context = Context.Create(new ContextOptions { NumThreads = threads });
            using var scope = new TensorScope();
            var (_, _, mean, rstd) = RunForward(context, false, [rows, cols], x, null, gamma, new float[cols]);
            var (_, dgamma, dbeta) = RunBackward(context, false, [rows, cols], x, gamma, mean, rstd, dy, null, accumulate: false);
            return [.. dgamma.ToArray<float>(), .. dbeta!.ToArray<float>()];
        }

        var one = Gradients(1);
        Assert.Equal(one, Gradients(2));
        Assert.Equal(one, Gradients(3));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void StridedRowsAndInPlaceOutputsWork(bool rms)
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        const int rows = 6, cols = 10;
        var random = new Random(3);
        var wide = TestData.Floats(random, rows * 2 * cols, 2f);
        var gamma = TestData.Floats(random, cols, 0.5f, 1f);
        var beta = rms ? null : TestData.Floats(random, cols, 0.5f);
        // x: the left half of every row of a [rows, 2*cols] matrix.
        var x = new float[rows * cols];
        for (var r = 0; r < rows; r++)
        {
            Array.Copy(wide, r * 2 * cols, x, r * cols, cols);
        }
        var expected = Reference.NormForwardPass(x, null, gamma, beta, rows, cols, Epsilon, rms);

        var baseTensor = Tensor.FromArray<float>(context, wide, rows, 2 * cols);
        var view = baseTensor.View(0, [rows, cols], [2 * cols, 1]);
        var g = Tensor.FromArray<float>(context, gamma);
        var b = beta is null ? null : Tensor.FromArray<float>(context, beta);
        // y is x itself: in place, through the strided view.
        if (rms)
        {
            Ops.RmsNormForward(context, view, null, g, view, epsilon: Epsilon);
        }
        else
        {
            Ops.LayerNormForward(context, view, null, g, b, view, epsilon: Epsilon);
        }

        TestData.AssertClose(view.ToArray<float>(), expected.Y, ForwardTolerance, "y");
        var after = baseTensor.ToArray<float>();
        for (var r = 0; r < rows; r++)
        {
            Assert.Equal(wide.AsSpan(r * 2 * cols + cols, cols).ToArray(), after.AsSpan(r * 2 * cols + cols, cols).ToArray());
        }
    }

    [Fact]
    public void TheAllocatingConveniencesMatchTheThinWrappers()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(5);
        var x = Tensor.FromArray<float>(context, TestData.Floats(random, 3 * 16, 2f), 3, 16);
        var residual = Tensor.FromArray<float>(context, TestData.Floats(random, 3 * 16, 1f), 3, 16);
        var gamma = Tensor.FromArray<float>(context, TestData.Floats(random, 16, 0.5f, 1f));
        var beta = Tensor.FromArray<float>(context, TestData.Floats(random, 16, 0.5f));
        var y1 = Tensor.Create(context, Dtype.F32, 3, 16);
        var y2 = Tensor.Create(context, Dtype.F32, 3, 16);
        Ops.LayerNormForward(context, x, residual, gamma, beta, y1, epsilon: 1e-3f);
        Ops.RmsNormForward(context, x, residual, gamma, y2, epsilon: 1e-3f);

        Assert.Equal(y1.ToArray<float>(), Ops.LayerNorm(x, gamma, beta, 1e-3f, residual).ToArray<float>());
        Assert.Equal(y2.ToArray<float>(), Ops.RmsNorm(x, gamma, 1e-3f, residual).ToArray<float>());
        Assert.Equal(8, scope.Count);
    }

    private static (int Rows, int Cols) RowsAndCols(long[] shape) =>
        ((int)(TestData.Product(shape) / shape[^1]), (int)shape[^1]);

    // mean and rstd are [N]: one entry per row, the leading dimensions flattened.
    private static long[] RowsShape(long[] shape) => [TestData.Product(shape) / shape[^1]];

    // Runs the forward kernel; returns y, sum (with a residual), mean (LayerNorm) and rstd. The
    // tensors belong to the caller's scope.
    private static (Tensor Y, Tensor? Sum, Tensor? Mean, Tensor Rstd) RunForward(Context context, bool rms, long[] shape,
        float[] x, float[]? residual, float[] gamma, float[]? beta)
    {
        var cols = shape[^1];
        var tx = Tensor.FromArray<float>(context, x, shape);
        var tr = residual is null ? null : Tensor.FromArray<float>(context, residual, shape);
        var tg = Tensor.FromArray<float>(context, gamma, cols);
        var y = Tensor.Create(context, Dtype.F32, shape);
        var sum = residual is null ? null : Tensor.Create(context, Dtype.F32, shape);
        var rstd = Tensor.Create(context, Dtype.F32, RowsShape(shape));
        if (rms)
        {
            Ops.RmsNormForward(context, tx, tr, tg, y, sum, rstd, Epsilon);
            return (y, sum, null, rstd);
        }
        var tb = beta is null ? null : Tensor.FromArray<float>(context, beta, cols);
        var mean = Tensor.Create(context, Dtype.F32, RowsShape(shape));
        Ops.LayerNormForward(context, tx, tr, tg, tb, y, sum, mean, rstd, Epsilon);
        return (y, sum, mean, rstd);
    }

    private static (Tensor Dx, Tensor Dgamma, Tensor? Dbeta) RunBackward(Context context, bool rms, long[] shape,
        float[] s, float[] gamma, Tensor? mean, Tensor rstd, float[] dy, float[]? ds, bool accumulate,
        float[]? dgammaStart = null, float[]? dbetaStart = null)
    {
        var cols = shape[^1];
        var tdy = Tensor.FromArray<float>(context, dy, shape);
        var tds = ds is null ? null : Tensor.FromArray<float>(context, ds, shape);
        var ts = Tensor.FromArray<float>(context, s, shape);
        var tg = Tensor.FromArray<float>(context, gamma, cols);
        var dx = Tensor.Create(context, Dtype.F32, shape);
        var dgamma = Tensor.Create(context, Dtype.F32, cols);
        if (dgammaStart is not null)
        {
            dgamma.CopyFrom<float>(dgammaStart);
        }
        if (rms)
        {
            Ops.RmsNormBackward(context, tdy, tds, ts, tg, rstd, dx, dgamma, accumulate);
            return (dx, dgamma, null);
        }
        var dbeta = Tensor.Create(context, Dtype.F32, cols);
        if (dbetaStart is not null)
        {
            dbeta.CopyFrom<float>(dbetaStart);
        }
        Ops.LayerNormBackward(context, tdy, tds, ts, tg, mean!, rstd, dx, dgamma, dbeta, accumulate);
        return (dx, dgamma, dbeta);
    }
}
