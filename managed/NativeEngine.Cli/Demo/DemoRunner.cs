using System.Diagnostics;

namespace NativeEngine.Cli.Demo;

/// <summary>Runs each kernel family on seeded random data and checks it against <see cref="Reference"/>.</summary>
internal sealed class DemoRunner(Context context, int seed)
{
    private const int Rows = 64;
    private const int Channels = 768;
    private const int GemmM = 64;
    private const int GemmN = 128;
    private const int GemmK = 768;
    private const float Epsilon = 1e-5f;

    private readonly Random _random = new(seed);

    public IReadOnlyList<CheckResult> RunAll() =>
    [
        Run("layernorm fwd", $"{Rows}x{Channels}", () => LayerNorm(backward: false)),
        Run("layernorm bwd", $"{Rows}x{Channels}", () => LayerNorm(backward: true)),
        Run("rmsnorm fwd", $"{Rows}x{Channels}", () => RmsNorm(backward: false)),
        Run("rmsnorm bwd", $"{Rows}x{Channels}", () => RmsNorm(backward: true)),
        Run("quant+dequant row", $"{Rows}x{Channels}", () => QuantizeRoundTrip(QuantAxis.PerRow)),
        Run("quant+dequant col", $"{Rows}x{Channels}", () => QuantizeRoundTrip(QuantAxis.PerColumn)),
        Run("gemm i8 -> i32", $"{GemmM}x{GemmN}x{GemmK}", GemmI32),
        Run("gemm i8 -> f32", $"{GemmM}x{GemmN}x{GemmK}", GemmF32),
        Run("linear int8", $"{GemmM}x{GemmN}x{GemmK}", Linear),
    ];

    // A kernel that is missing from the library or fails natively is a FAIL row, not the end of the demo.
    private static CheckResult Run(string kernel, string shape, Func<(double Error, double Tolerance, double Ms)> check)
    {
        try
        {
            var (error, tolerance, ms) = check();
            return new CheckResult(kernel, shape, error, tolerance, ms);
        }
        catch (EntryPointNotFoundException e)
        {
            return new CheckResult(kernel, shape, double.NaN, double.NaN, double.NaN, $"missing from the native library: {e.Message}");
        }
        catch (NativeEngineException e)
        {
            return new CheckResult(kernel, shape, double.NaN, double.NaN, double.NaN, e.Message);
        }
    }

    private (double, double, double) LayerNorm(bool backward)
    {
        using var scope = new TensorScope();
        var x = RandomFloats(Rows * Channels, 2f);
        var residual = RandomFloats(Rows * Channels, 1f);
        var gamma = RandomFloats(Channels, 0.2f, 1f);
        var beta = RandomFloats(Channels, 0.2f);
        var expected = Reference.LayerNormForward(x, residual, gamma, beta, Rows, Channels, Epsilon, rms: false);

        var tx = Tensor.FromArray<float>(context, x, Rows, Channels);
        var tr = Tensor.FromArray<float>(context, residual, Rows, Channels);
        var tg = Tensor.FromArray<float>(context, gamma);
        var tb = Tensor.FromArray<float>(context, beta);
        var y = Tensor.Create(context, Dtype.F32, Rows, Channels);
        var sum = Tensor.Create(context, Dtype.F32, Rows, Channels);
        var mean = Tensor.Create(context, Dtype.F32, Rows);
        var rstd = Tensor.Create(context, Dtype.F32, Rows);
        var forwardMs = Time(() => Ops.LayerNormForward(context, tx, tr, tg, tb, y, sum, mean, rstd, Epsilon));
        if (!backward)
        {
            var error = Math.Max(
                Math.Max(Reference.MaxRelativeError(y.ToArray<float>(), expected.Y), Reference.MaxRelativeError(sum.ToArray<float>(), expected.Sum)),
                Math.Max(Reference.MaxRelativeError(mean.ToArray<float>(), expected.Mean), Reference.MaxRelativeError(rstd.ToArray<float>(), expected.Rstd)));
            return (error, 1e-4, forwardMs);
        }

        var dy = RandomFloats(Rows * Channels, 1f);
        var ds = RandomFloats(Rows * Channels, 1f);
        var grads = Reference.LayerNormBackward(dy, ds, expected.Sum, gamma, mean.ToArray<float>(), rstd.ToArray<float>(), Rows, Channels, rms: false);
        var tdy = Tensor.FromArray<float>(context, dy, Rows, Channels);
        var tds = Tensor.FromArray<float>(context, ds, Rows, Channels);
        var dx = Tensor.Create(context, Dtype.F32, Rows, Channels);
        var dgamma = Tensor.Create(context, Dtype.F32, Channels);
        var dbeta = Tensor.Create(context, Dtype.F32, Channels);
        var ms = Time(() => Ops.LayerNormBackward(context, tdy, tds, sum, tg, mean, rstd, dx, dgamma, dbeta));
        var backwardError = Math.Max(Reference.MaxRelativeError(dx.ToArray<float>(), grads.Dx),
            Math.Max(Reference.MaxRelativeError(dgamma.ToArray<float>(), grads.Dgamma), Reference.MaxRelativeError(dbeta.ToArray<float>(), grads.Dbeta)));
        return (backwardError, 1e-4, ms);
    }

    private (double, double, double) RmsNorm(bool backward)
    {
        using var scope = new TensorScope();
        var x = RandomFloats(Rows * Channels, 2f);
        var residual = RandomFloats(Rows * Channels, 1f);
        var gamma = RandomFloats(Channels, 0.2f, 1f);
        var expected = Reference.LayerNormForward(x, residual, gamma, null, Rows, Channels, Epsilon, rms: true);

        var tx = Tensor.FromArray<float>(context, x, Rows, Channels);
        var tr = Tensor.FromArray<float>(context, residual, Rows, Channels);
        var tg = Tensor.FromArray<float>(context, gamma);
        var y = Tensor.Create(context, Dtype.F32, Rows, Channels);
        var sum = Tensor.Create(context, Dtype.F32, Rows, Channels);
        var rstd = Tensor.Create(context, Dtype.F32, Rows);
        var forwardMs = Time(() => Ops.RmsNormForward(context, tx, tr, tg, y, sum, rstd, Epsilon));
        if (!backward)
        {
            var error = Math.Max(
                Math.Max(Reference.MaxRelativeError(y.ToArray<float>(), expected.Y), Reference.MaxRelativeError(sum.ToArray<float>(), expected.Sum)),
                Reference.MaxRelativeError(rstd.ToArray<float>(), expected.Rstd));
            return (error, 1e-4, forwardMs);
        }

        var dy = RandomFloats(Rows * Channels, 1f);
        var ds = RandomFloats(Rows * Channels, 1f);
        var grads = Reference.LayerNormBackward(dy, ds, expected.Sum, gamma, new float[Rows], rstd.ToArray<float>(), Rows, Channels, rms: true);
        var tdy = Tensor.FromArray<float>(context, dy, Rows, Channels);
        var tds = Tensor.FromArray<float>(context, ds, Rows, Channels);
        var dx = Tensor.Create(context, Dtype.F32, Rows, Channels);
        var dgamma = Tensor.Create(context, Dtype.F32, Channels);
        var ms = Time(() => Ops.RmsNormBackward(context, tdy, tds, sum, tg, rstd, dx, dgamma));
        var backwardError = Math.Max(Reference.MaxRelativeError(dx.ToArray<float>(), grads.Dx),
            Reference.MaxRelativeError(dgamma.ToArray<float>(), grads.Dgamma));
        return (backwardError, 1e-4, ms);
    }

    // Error: the largest |dequantize(quantize(x)) - x| in units of the group's scale, at most 1/2
    // for round-to-nearest; q and the scales must also equal the reference exactly.
    private (double, double, double) QuantizeRoundTrip(QuantAxis axis)
    {
        using var scope = new TensorScope();
        var perRow = axis == QuantAxis.PerRow;
        var x = RandomFloats(Rows * Channels, 3f);
        var (expectedQ, expectedScales) = Reference.Quantize(x, Rows, Channels, perRow);
        var tx = Tensor.FromArray<float>(context, x, Rows, Channels);
        var q = Tensor.Create(context, Dtype.I8, Rows, Channels);
        var scales = Tensor.Create(context, Dtype.F32, perRow ? Rows : Channels);
        var back = Tensor.Create(context, Dtype.F32, Rows, Channels);
        var ms = Time(() => Ops.QuantizeInt8(context, axis, tx, q, scales));
        Ops.DequantizeInt8(context, axis, q, scales, back);

        var actualQ = q.ToArray<sbyte>();
        var actualScales = scales.ToArray<float>();
        var roundTrip = back.ToArray<float>();
        if (!actualQ.AsSpan().SequenceEqual(expectedQ) || !actualScales.AsSpan().SequenceEqual(expectedScales))
        {
            return (double.PositiveInfinity, 0.5, ms);
        }
        double worst = 0;
        for (var i = 0; i < x.Length; i++)
        {
            var scale = actualScales[perRow ? i / Channels : i % Channels];
            if (scale > 0)
            {
                worst = Math.Max(worst, Math.Abs(roundTrip[i] - x[i]) / scale);
            }
        }
        return (worst, 0.5 + 1e-3, ms);
    }

    private (double, double, double) GemmI32()
    {
        using var scope = new TensorScope();
        var a = RandomInt8(GemmM * GemmK);
        var b = RandomInt8(GemmN * GemmK);
        var expected = Reference.GemmInt8(a, b, GemmM, GemmN, GemmK);
        var ta = Tensor.FromArray<sbyte>(context, a, GemmM, GemmK);
        var tb = Tensor.FromArray<sbyte>(context, b, GemmN, GemmK);
        var c = Tensor.Create(context, Dtype.I32, GemmM, GemmN);
        var ms = Time(() => Ops.GemmInt8(context, ta, tb, null, null, null, c));
        return (Reference.MaxAbsoluteError(c.ToArray<int>(), expected), 0, ms);
    }

    private (double, double, double) GemmF32()
    {
        using var scope = new TensorScope();
        var a = RandomInt8(GemmM * GemmK);
        var b = RandomInt8(GemmN * GemmK);
        var aScales = RandomFloats(GemmM, 0.01f, 0.02f);
        var bScales = RandomFloats(GemmN, 0.01f, 0.02f);
        var bias = RandomFloats(GemmN, 1f);
        var expected = Reference.Dequantize(Reference.GemmInt8(a, b, GemmM, GemmN, GemmK), aScales, bScales, bias, GemmM, GemmN);
        var ta = Tensor.FromArray<sbyte>(context, a, GemmM, GemmK);
        var tb = Tensor.FromArray<sbyte>(context, b, GemmN, GemmK);
        var tas = Tensor.FromArray<float>(context, aScales);
        var tbs = Tensor.FromArray<float>(context, bScales);
        var tbias = Tensor.FromArray<float>(context, bias);
        var c = Tensor.Create(context, Dtype.F32, GemmM, GemmN);
        var ms = Time(() => Ops.GemmInt8(context, ta, tb, tas, tbs, tbias, c));
        return (Reference.MaxRelativeError(c.ToArray<float>(), expected), 1e-5, ms);
    }

    private (double, double, double) Linear()
    {
        using var scope = new TensorScope();
        var x = RandomFloats(GemmM * GemmK, 2f);
        var weights = RandomFloats(GemmN * GemmK, 0.5f);
        var bias = RandomFloats(GemmN, 1f);
        var (w, wScales) = Reference.Quantize(weights, GemmN, GemmK, perRow: true);
        var (xq, xScales) = Reference.Quantize(x, GemmM, GemmK, perRow: true);
        var expected = Reference.Dequantize(Reference.GemmInt8(xq, w, GemmM, GemmN, GemmK), xScales, wScales, bias, GemmM, GemmN);
        var tx = Tensor.FromArray<float>(context, x, GemmM, GemmK);
        var tw = Tensor.FromArray<sbyte>(context, w, GemmN, GemmK);
        var tws = Tensor.FromArray<float>(context, wScales);
        var tbias = Tensor.FromArray<float>(context, bias);
        var y = Tensor.Create(context, Dtype.F32, GemmM, GemmN);
        var ms = Time(() => Ops.LinearInt8(context, tx, tw, tws, tbias, y));
        return (Reference.MaxRelativeError(y.ToArray<float>(), expected), 1e-4, ms);
    }

    // Runs the kernel once (the checked run), then reports the best of three more runs.
    private static double Time(Action kernel)
    {
        kernel();
        var best = double.PositiveInfinity;
        for (var i = 0; i < 3; i++)
        {
            var start = Stopwatch.GetTimestamp();
            kernel();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        return best;
    }

    private float[] RandomFloats(int count, float spread, float center = 0f)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = center + spread * (2f * _random.NextSingle() - 1f);
        }
        return values;
    }

    private sbyte[] RandomInt8(int count)
    {
        var values = new sbyte[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (sbyte)_random.Next(sbyte.MinValue, sbyte.MaxValue + 1);
        }
        return values;
    }
}
