namespace NativeEngine.Cli.Demo;

/// <summary>Plain managed references of the kernels (float data, double accumulation), written
/// straight from the formulas of nativeengine.h.</summary>
internal static class Reference
{
    public readonly record struct NormForward(float[] Y, float[] Sum, float[] Mean, float[] Rstd);

    public readonly record struct NormBackward(float[] Dx, float[] Dgamma, float[] Dbeta);

    public static NormForward LayerNormForward(float[] x, float[]? residual, float[] gamma, float[]? beta, int rows, int cols, float epsilon, bool rms)
    {
        var y = new float[rows * cols];
        var sum = new float[rows * cols];
        var mean = new float[rows];
        var rstd = new float[rows];
        for (var r = 0; r < rows; r++)
        {
            double m = 0, squares = 0;
            for (var c = 0; c < cols; c++)
            {
                var s = x[r * cols + c] + (residual?[r * cols + c] ?? 0f);
                sum[r * cols + c] = s;
                m += s;
            }
            m = rms ? 0 : m / cols;
            for (var c = 0; c < cols; c++)
            {
                var d = sum[r * cols + c] - m;
                squares += d * d;
            }
            var inv = 1.0 / Math.Sqrt(squares / cols + epsilon);
            mean[r] = (float)m;
            rstd[r] = (float)inv;
            for (var c = 0; c < cols; c++)
            {
                y[r * cols + c] = (float)((sum[r * cols + c] - m) * inv * gamma[c] + (beta?[c] ?? 0f));
            }
        }
        return new NormForward(y, sum, mean, rstd);
    }

    /// <summary>dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) + ds with g = dy * gamma
    /// (RMSNorm: without the mean(g) term and with mean = 0); dgamma = sum dy * xhat; dbeta = sum dy.</summary>
    public static NormBackward LayerNormBackward(float[] dy, float[]? ds, float[] s, float[] gamma, float[] mean, float[] rstd, int rows, int cols, bool rms)
    {
        var dx = new float[rows * cols];
        var dgamma = new double[cols];
        var dbeta = new double[cols];
        for (var r = 0; r < rows; r++)
        {
            double meanG = 0, meanGx = 0;
            for (var c = 0; c < cols; c++)
            {
                var i = r * cols + c;
                var xhat = (s[i] - (rms ? 0 : mean[r])) * (double)rstd[r];
                var g = dy[i] * (double)gamma[c];
                meanG += g;
                meanGx += g * xhat;
                dgamma[c] += dy[i] * xhat;
                dbeta[c] += dy[i];
            }
            meanG = rms ? 0 : meanG / cols;
            meanGx /= cols;
            for (var c = 0; c < cols; c++)
            {
                var i = r * cols + c;
                var xhat = (s[i] - (rms ? 0 : mean[r])) * (double)rstd[r];
                var g = dy[i] * (double)gamma[c];
                dx[i] = (float)(rstd[r] * (g - meanG - xhat * meanGx) + (ds?[i] ?? 0f));
            }
        }
        return new NormBackward(dx, Array.ConvertAll(dgamma, v => (float)v), Array.ConvertAll(dbeta, v => (float)v));
    }

    /// <summary>Per-row (or per-column) symmetric absmax quantization, exactly as the header states it.</summary>
    public static (sbyte[] Q, float[] Scales) Quantize(float[] x, int rows, int cols, bool perRow)
    {
        var q = new sbyte[rows * cols];
        var scales = new float[perRow ? rows : cols];
        for (var g = 0; g < scales.Length; g++)
        {
            var count = perRow ? cols : rows;
            float absmax = 0;
            for (var j = 0; j < count; j++)
            {
                absmax = Math.Max(absmax, Math.Abs(x[perRow ? g * cols + j : j * cols + g]));
            }
            scales[g] = absmax / 127f;
            var inv = absmax == 0 ? 0f : 127f / absmax;
            for (var j = 0; j < count; j++)
            {
                var i = perRow ? g * cols + j : j * cols + g;
                q[i] = (sbyte)Math.Clamp(MathF.Round(x[i] * inv, MidpointRounding.ToEven), -127f, 127f);
            }
        }
        return (q, scales);
    }

    public static int[] GemmInt8(sbyte[] a, sbyte[] b, int m, int n, int k)
    {
        var c = new int[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var acc = 0;
                for (var p = 0; p < k; p++)
                {
                    acc += a[i * k + p] * b[j * k + p];
                }
                c[i * n + j] = acc;
            }
        }
        return c;
    }

    public static float[] Dequantize(int[] acc, float[] aScales, float[] bScales, float[]? bias, int m, int n)
    {
        var c = new float[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                c[i * n + j] = (float)((double)acc[i * n + j] * aScales[i] * bScales[j] + (bias?[j] ?? 0f));
            }
        }
        return c;
    }

    /// <summary>Largest |actual - expected| / max(1, |expected|).</summary>
    public static double MaxRelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double worst = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            var error = Math.Abs((double)actual[i] - expected[i]) / Math.Max(1.0, Math.Abs(expected[i]));
            worst = double.IsNaN(error) ? double.PositiveInfinity : Math.Max(worst, error);
        }
        return worst;
    }

    public static double MaxAbsoluteError(ReadOnlySpan<int> actual, ReadOnlySpan<int> expected)
    {
        double worst = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs((double)actual[i] - expected[i]));
        }
        return worst;
    }
}
