namespace NativeEngine.Tests.Support;

/// <summary>Double-precision references of the kernels, straight from the formulas of nativeengine.h.
/// Matrices are row-major [rows, cols].</summary>
internal static class Reference
{
    public sealed record NormForward(double[] Y, double[] Sum, double[] Mean, double[] Rstd);

    public sealed record NormBackward(double[] Dx, double[] Dgamma, double[] Dbeta);

    /// <summary>s = x + residual; LayerNorm: y = (s - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps);
    /// RMSNorm (rms): mean = 0 and y = s * rstd * gamma, rstd = 1/sqrt(mean(s^2) + eps).</summary>
    public static NormForward NormForwardPass(float[] x, float[]? residual, float[] gamma, float[]? beta, int rows, int cols, float epsilon, bool rms)
    {
        var y = new double[rows * cols];
        var sum = new double[rows * cols];
        var mean = new double[rows];
        var rstd = new double[rows];
        for (var r = 0; r < rows; r++)
        {
            double m = 0;
            for (var c = 0; c < cols; c++)
            {
                // s is materialized in f32 by the kernel (the sum output), so round it as f32 here too.
                var s = (double)(x[r * cols + c] + (residual?[r * cols + c] ?? 0f));
                sum[r * cols + c] = s;
                m += s;
            }
            m = rms ? 0 : m / cols;
            double squares = 0;
            for (var c = 0; c < cols; c++)
            {
                var d = sum[r * cols + c] - m;
                squares += d * d;
            }
            var inv = 1.0 / Math.Sqrt(squares / cols + epsilon);
            mean[r] = m;
            rstd[r] = inv;
            for (var c = 0; c < cols; c++)
            {
                y[r * cols + c] = (sum[r * cols + c] - m) * inv * gamma[c] + (beta?[c] ?? 0.0);
            }
        }
        return new NormForward(y, sum, mean, rstd);
    }

    /// <summary>g = dy * gamma, xhat = (s - mean) * rstd;
    /// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) + ds (RMSNorm: no mean(g) term, mean = 0);
    /// dgamma = sum over rows of dy * xhat; dbeta = sum over rows of dy.</summary>
    public static NormBackward NormBackwardPass(float[] dy, float[]? ds, float[] s, float[] gamma, double[] mean, double[] rstd, int rows, int cols, bool rms)
    {
        var dx = new double[rows * cols];
        var dgamma = new double[cols];
        var dbeta = new double[cols];
        for (var r = 0; r < rows; r++)
        {
            double meanG = 0, meanGx = 0;
            for (var c = 0; c < cols; c++)
            {
                var i = r * cols + c;
                var xhat = (s[i] - mean[r]) * rstd[r];
                var g = (double)dy[i] * gamma[c];
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
                var xhat = (s[i] - mean[r]) * rstd[r];
                var g = (double)dy[i] * gamma[c];
                dx[i] = rstd[r] * (g - meanG - xhat * meanGx) + (ds?[i] ?? 0.0);
            }
        }
        return new NormBackward(dx, dgamma, dbeta);
    }

    /// <summary>scale = absmax / 127 (0 for an all-zero group), q = clamp(round_half_even(x * (127 / absmax)), -127, 127),
    /// in f32 exactly as the header states it.</summary>
    public static (sbyte[] Q, float[] Scales) Quantize(float[] x, int rows, int cols, QuantAxis axis)
    {
        var perRow = axis == QuantAxis.PerRow;
        var q = new sbyte[rows * cols];
        var scales = new float[perRow ? rows : cols];
        var count = perRow ? cols : rows;
        for (var g = 0; g < scales.Length; g++)
        {
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

    /// <summary>x = q * scale, in f32.</summary>
    public static float[] Dequantize(sbyte[] q, float[] scales, int rows, int cols, QuantAxis axis)
    {
        var x = new float[rows * cols];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < cols; c++)
            {
                x[r * cols + c] = q[r * cols + c] * scales[axis == QuantAxis.PerRow ? r : c];
            }
        }
        return x;
    }

    /// <summary>acc[m,n] = sum_k a[m,k] * b[n,k], exact in 64 bits.</summary>
    public static long[] GemmInt8(sbyte[] a, sbyte[] b, int m, int n, int k)
    {
        var c = new long[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                long acc = 0;
                for (var p = 0; p < k; p++)
                {
                    acc += a[i * k + p] * b[j * k + p];
                }
                c[i * n + j] = acc;
            }
        }
        return c;
    }

    /// <summary>c[m,n] = acc[m,n] * aScales[m] * bScales[n] + bias[n], in double.</summary>
    public static double[] Dequantize(long[] acc, float[] aScales, float[] bScales, float[]? bias, int m, int n)
    {
        var c = new double[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                c[i * n + j] = acc[i * n + j] * (double)aScales[i] * bScales[j] + (bias?[j] ?? 0.0);
            }
        }
        return c;
    }
}
