using System.Diagnostics;

namespace NativeEngine.Cli.Demo;

/// <summary>
/// Runs each kernel family on seeded random data twice, on the chosen context and on a reference
/// context at <see cref="SimdLevel.Scalar"/> (the library's commented scalar reference kernels, one
/// thread), and compares the outputs. The same inputs feed both runs.
/// </summary>
internal sealed class DemoRunner(Context context, Context reference, int seed)
{
    private const int Rows = 64;
    private const int Channels = 768;
    private const int GemmM = 64;
    private const int GemmN = 128;
    private const int GemmK = 768;
    private const float Epsilon = 1e-5f;

    // Tolerances against the scalar reference: the norms differ from it only by the order of their
    // float sums (the backward passes chain more of them); the integer kernels, quantization and
    // the fused int8 epilogue are bit-exact.
    private const double NormTolerance = 1e-5;
    private const double NormBackwardTolerance = 1e-4;
    private const double Exact = 0;

    private readonly Random _random = new(seed);

    /// <summary>Runs the kernel on a context and returns its outputs as arrays; <c>time</c> runs
    /// the kernel call itself (timed on the demo context, once on the reference context).</summary>
    private delegate Array[] Kernel(Context on, Func<Action, double> time);

    public IReadOnlyList<CheckResult> RunAll()
    {
        var norm = $"{Rows}x{Channels}";
        var gemm = $"{GemmM}x{GemmN}x{GemmK}";
        return
        [
            Check("layernorm fwd", norm, NormTolerance, LayerNormForward()),
            Check("layernorm bwd", norm, NormBackwardTolerance, LayerNormBackward()),
            Check("rmsnorm fwd", norm, NormTolerance, RmsNormForward()),
            Check("rmsnorm bwd", norm, NormBackwardTolerance, RmsNormBackward()),
            Check("quantize per row", norm, Exact, Quantize(QuantAxis.PerRow)),
            Check("quantize per column", norm, Exact, Quantize(QuantAxis.PerColumn)),
            Check("gemm i8 -> i32", gemm, Exact, GemmI32()),
            Check("gemm i8 -> f32", gemm, Exact, GemmF32()),
            Check("linear int8", gemm, Exact, Linear()),
        ];
    }

    // A kernel that is missing from the library or fails natively is a FAIL row, not the end of the demo.
    private CheckResult Check(string kernel, string shape, double tolerance, Kernel run)
    {
        try
        {
            Array[] expected;
            using (new TensorScope())
            {
                expected = run(reference, RunOnce);
            }
            var milliseconds = 0.0;
            Array[] actual;
            using (new TensorScope())
            {
                actual = run(context, call => milliseconds = BestOfThree(call));
            }
            var error = expected.Zip(actual, MaxRelativeError).Max();
            return new CheckResult(kernel, shape, error, tolerance, milliseconds);
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

    private Kernel LayerNormForward()
    {
        var (x, residual, gamma, beta) = (RandomFloats(Rows * Channels, 2f), RandomFloats(Rows * Channels, 1f),
            RandomFloats(Channels, 0.2f, 1f), RandomFloats(Channels, 0.2f));
        return (on, time) =>
        {
            var (y, sum, mean, rstd) = (Floats(on, Rows, Channels), Floats(on, Rows, Channels), Floats(on, Rows), Floats(on, Rows));
            var (tx, tr, tg, tb) = (Matrix(on, x), Matrix(on, residual), Vector(on, gamma), Vector(on, beta));
            time(() => Ops.LayerNormForward(on, tx, tr, tg, tb, y, sum, mean, rstd, Epsilon));
            return [y.ToArray<float>(), sum.ToArray<float>(), mean.ToArray<float>(), rstd.ToArray<float>()];
        };
    }

    private Kernel LayerNormBackward()
    {
        var (x, gamma, dy, ds) = (RandomFloats(Rows * Channels, 2f), RandomFloats(Channels, 0.2f, 1f),
            RandomFloats(Rows * Channels, 1f), RandomFloats(Rows * Channels, 1f));
        return (on, time) =>
        {
            var (tx, tg) = (Matrix(on, x), Vector(on, gamma));
            var (y, mean, rstd) = (Floats(on, Rows, Channels), Floats(on, Rows), Floats(on, Rows));
            Ops.LayerNormForward(on, tx, null, tg, null, y, null, mean, rstd, Epsilon);
            var (dx, dgamma, dbeta) = (Floats(on, Rows, Channels), Floats(on, Channels), Floats(on, Channels));
            var (tdy, tds) = (Matrix(on, dy), Matrix(on, ds));
            time(() => Ops.LayerNormBackward(on, tdy, tds, tx, tg, mean, rstd, dx, dgamma, dbeta));
            return [dx.ToArray<float>(), dgamma.ToArray<float>(), dbeta.ToArray<float>()];
        };
    }

    private Kernel RmsNormForward()
    {
        var (x, residual, gamma) = (RandomFloats(Rows * Channels, 2f), RandomFloats(Rows * Channels, 1f), RandomFloats(Channels, 0.2f, 1f));
        return (on, time) =>
        {
            var (y, sum, rstd) = (Floats(on, Rows, Channels), Floats(on, Rows, Channels), Floats(on, Rows));
            var (tx, tr, tg) = (Matrix(on, x), Matrix(on, residual), Vector(on, gamma));
            time(() => Ops.RmsNormForward(on, tx, tr, tg, y, sum, rstd, Epsilon));
            return [y.ToArray<float>(), sum.ToArray<float>(), rstd.ToArray<float>()];
        };
    }

    private Kernel RmsNormBackward()
    {
        var (x, gamma, dy, ds) = (RandomFloats(Rows * Channels, 2f), RandomFloats(Channels, 0.2f, 1f),
            RandomFloats(Rows * Channels, 1f), RandomFloats(Rows * Channels, 1f));
        return (on, time) =>
        {
            var (tx, tg) = (Matrix(on, x), Vector(on, gamma));
            var (y, rstd) = (Floats(on, Rows, Channels), Floats(on, Rows));
            Ops.RmsNormForward(on, tx, null, tg, y, null, rstd, Epsilon);
            var (dx, dgamma) = (Floats(on, Rows, Channels), Floats(on, Channels));
            var (tdy, tds) = (Matrix(on, dy), Matrix(on, ds));
            time(() => Ops.RmsNormBackward(on, tdy, tds, tx, tg, rstd, dx, dgamma));
            return [dx.ToArray<float>(), dgamma.ToArray<float>()];
        };
    }

    // Quantization, then dequantization of the result: q, the scales and the round trip.
    private Kernel Quantize(QuantAxis axis)
    {
        var x = RandomFloats(Rows * Channels, 3f);
        return (on, time) =>
        {
            var tx = Matrix(on, x);
            var q = Tensor.Create(on, Dtype.I8, Rows, Channels);
            var scales = Floats(on, axis == QuantAxis.PerRow ? Rows : Channels);
            var back = Floats(on, Rows, Channels);
            time(() => Ops.QuantizeInt8(on, axis, tx, q, scales));
            Ops.DequantizeInt8(on, axis, q, scales, back);
            return [q.ToArray<sbyte>(), scales.ToArray<float>(), back.ToArray<float>()];
        };
    }

    private Kernel GemmI32()
    {
        var (a, b) = (RandomInt8(GemmM * GemmK), RandomInt8(GemmN * GemmK));
        return (on, time) =>
        {
            var (ta, tb) = (Tensor.FromArray<sbyte>(on, a, GemmM, GemmK), Tensor.FromArray<sbyte>(on, b, GemmN, GemmK));
            var c = Tensor.Create(on, Dtype.I32, GemmM, GemmN);
            time(() => Ops.GemmInt8(on, ta, tb, null, null, null, c));
            return [c.ToArray<int>()];
        };
    }

    private Kernel GemmF32()
    {
        var (a, b) = (RandomInt8(GemmM * GemmK), RandomInt8(GemmN * GemmK));
        var (aScales, bScales, bias) = (RandomFloats(GemmM, 0.01f, 0.02f), RandomFloats(GemmN, 0.01f, 0.02f), RandomFloats(GemmN, 1f));
        return (on, time) =>
        {
            var (ta, tb) = (Tensor.FromArray<sbyte>(on, a, GemmM, GemmK), Tensor.FromArray<sbyte>(on, b, GemmN, GemmK));
            var (tas, tbs, tbias) = (Vector(on, aScales), Vector(on, bScales), Vector(on, bias));
            var c = Floats(on, GemmM, GemmN);
            time(() => Ops.GemmInt8(on, ta, tb, tas, tbs, tbias, c));
            return [c.ToArray<float>()];
        };
    }

    private Kernel Linear()
    {
        var (x, w, bias) = (RandomFloats(GemmM * GemmK, 2f), RandomInt8(GemmN * GemmK), RandomFloats(GemmN, 1f));
        var wScales = RandomFloats(GemmN, 0.01f, 0.02f);
        return (on, time) =>
        {
            var (tx, tw) = (Tensor.FromArray<float>(on, x, GemmM, GemmK), Tensor.FromArray<sbyte>(on, w, GemmN, GemmK));
            var (tws, tbias) = (Vector(on, wScales), Vector(on, bias));
            var y = Floats(on, GemmM, GemmN);
            time(() => Ops.LinearInt8(on, tx, tw, tws, tbias, y));
            return [y.ToArray<float>()];
        };
    }

    private static Tensor Floats(Context on, params long[] shape) => Tensor.Create(on, Dtype.F32, shape);

    private static Tensor Matrix(Context on, float[] values) => Tensor.FromArray<float>(on, values, Rows, Channels);

    private static Tensor Vector(Context on, float[] values) => Tensor.FromArray<float>(on, values);

    // |actual - expected| / max(1, |expected|), the largest over the elements of one output.
    private static double MaxRelativeError(Array expected, Array actual)
    {
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            var e = Convert.ToDouble(expected.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
            var a = Convert.ToDouble(actual.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
            var error = double.IsNaN(a) ? double.PositiveInfinity : Math.Abs(a - e) / Math.Max(1.0, Math.Abs(e));
            worst = Math.Max(worst, error);
        }
        return worst;
    }

    private static double RunOnce(Action kernel)
    {
        kernel();
        return 0;
    }

    // The first call produces the compared outputs; the time is the best of three calls after it.
    private static double BestOfThree(Action kernel)
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
