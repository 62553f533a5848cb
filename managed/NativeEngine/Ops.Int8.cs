using NativeEngine.Interop;

namespace NativeEngine;

// Int8 quantization, dequantization, GEMM and linear. Shapes: M, N, K for the GEMM:
// C[M,N] = A[M,K] * B[N,K]^T.
public static partial class Ops
{

    /// <summary>Symmetric absmax quantization (<c>ne_quantize_int8</c>) of a 2-D contiguous matrix
    /// x [R,C] f32: per group, <c>scale = absmax / 127</c> (0 for an all-zero group) and
    /// <c>q = clamp(round_half_even(x * (127 / absmax)), -127, 127)</c>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="axis">One scale per row or per column.</param>
    /// <param name="x">The input, [R,C] f32.</param>
    /// <param name="q">Receives the quantized values, [R,C] i8.</param>
    /// <param name="scales">Receives the scales, [R] (per row) or [C] (per column) f32.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void QuantizeInt8(Context context, QuantAxis axis, Tensor x, Tensor q, Tensor scales)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_quantize_int8(context.Handle, axis,
            Required(x, nameof(x)), Required(q, nameof(q)), Required(scales, nameof(scales))));
    }

    /// <summary>Dequantization (<c>ne_dequantize_int8</c>): <c>x = q * scale</c>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="axis">One scale per row or per column.</param>
    /// <param name="q">The quantized values, [R,C] i8.</param>
    /// <param name="scales">The scales, [R] (per row) or [C] (per column) f32.</param>
    /// <param name="x">Receives the values, [R,C] f32.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void DequantizeInt8(Context context, QuantAxis axis, Tensor q, Tensor scales, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_dequantize_int8(context.Handle, axis,
            Required(q, nameof(q)), Required(scales, nameof(scales)), Required(x, nameof(x))));
    }

    /// <summary>Int8 GEMM with exact int32 accumulation (<c>ne_gemm_int8</c>):
    /// <c>acc[m,n] = sum_k a[m,k] * b[n,k]</c>, with a [M,K] i8 and b [N,K] i8 (2-D, contiguous rows,
    /// the full int8 range, K at most <see cref="NativeConstants.Int8GemmMaxK"/>).
    /// With <paramref name="c"/> i32 [M,N]: <c>c = acc</c>, and the scales and bias must be null.
    /// With <paramref name="c"/> f32 [M,N]: <c>c = acc * aScales[m] * bScales[n] (+ bias[n])</c>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="a">The left matrix, [M,K] i8.</param>
    /// <param name="b">The right matrix, [N,K] i8 (a linear layer's weight layout: one row per output).</param>
    /// <param name="aScales">[M] f32 for an f32 output, else null.</param>
    /// <param name="bScales">[N] f32 for an f32 output, else null.</param>
    /// <param name="bias">[N] f32 added to an f32 output, or null.</param>
    /// <param name="c">The output, [M,N] i32 or f32.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void GemmInt8(Context context, Tensor a, Tensor b, Tensor? aScales, Tensor? bScales, Tensor? bias, Tensor c)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_gemm_int8(context.Handle,
            Required(a, nameof(a)), Required(b, nameof(b)), Optional(aScales, nameof(aScales)),
            Optional(bScales, nameof(bScales)), Optional(bias, nameof(bias)), Required(c, nameof(c))));
    }

    /// <summary>Quantized linear layer (<c>ne_linear_int8</c>):
    /// <c>y = dequant(quant_per_row(x) * w^T) + bias</c>; x is quantized per row on the fly.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="x">The input, [M,K] f32.</param>
    /// <param name="w">The weight, [N,K] i8, quantized per output channel (per row).</param>
    /// <param name="wScales">The weight scales, [N] f32.</param>
    /// <param name="bias">[N] f32, or null.</param>
    /// <param name="y">The output, [M,N] f32.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void LinearInt8(Context context, Tensor x, Tensor w, Tensor wScales, Tensor? bias, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_linear_int8(context.Handle,
            Required(x, nameof(x)), Required(w, nameof(w)), Required(wScales, nameof(wScales)),
            Optional(bias, nameof(bias)), Required(y, nameof(y))));
    }

    /// <summary>Quantizes a 2-D f32 matrix to int8 with absmax scales. See <see cref="QuantizeInt8"/>.</summary>
    /// <param name="x">The input, [R,C] f32, contiguous.</param>
    /// <param name="axis">One scale per row (the default) or per column.</param>
    /// <returns>New tensors q [R,C] i8 and scales [R] or [C] f32. Ownership: the caller owns both (or
    /// the current <see cref="TensorScope"/> does).</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is not 2-D.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static (Tensor Q, Tensor Scales) Quantize(Tensor x, QuantAxis axis = QuantAxis.PerRow)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (rows, cols) = Matrix(x, nameof(x));
        var context = x.Context;
        var q = Tensor.Create(context, Dtype.I8, rows, cols);
        try
        {
            var scales = Allocate(context, Dtype.F32, [axis == QuantAxis.PerColumn ? cols : rows],
                scales => QuantizeInt8(context, axis, x, q, scales));
            return (q, scales);
        }
        catch
        {
            q.Dispose();
            throw;
        }
    }

    /// <summary>Dequantizes a 2-D int8 matrix. See <see cref="DequantizeInt8"/>.</summary>
    /// <param name="q">The quantized values, [R,C] i8.</param>
    /// <param name="scales">The scales, [R] (per row) or [C] (per column) f32.</param>
    /// <param name="axis">One scale per row (the default) or per column.</param>
    /// <returns>x, a new f32 tensor of <paramref name="q"/>'s shape. Ownership: the caller (or the
    /// current <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Dequantize(Tensor q, Tensor scales, QuantAxis axis = QuantAxis.PerRow)
    {
        ArgumentNullException.ThrowIfNull(q);
        return Allocate(q.Context, Dtype.F32, q.Shape, x => DequantizeInt8(q.Context, axis, q, scales, x));
    }

    /// <summary>Int8 GEMM with an exact int32 result: <c>c[m,n] = sum_k a[m,k] * b[n,k]</c>.
    /// See <see cref="GemmInt8"/>.</summary>
    /// <param name="a">The left matrix, [M,K] i8.</param>
    /// <param name="b">The right matrix, [N,K] i8.</param>
    /// <returns>c, a new [M,N] i32 tensor. Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="ArgumentException"><paramref name="a"/> or <paramref name="b"/> is not 2-D.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor MatMulInt8(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var (m, _) = Matrix(a, nameof(a));
        var (n, _) = Matrix(b, nameof(b));
        return Allocate(a.Context, Dtype.I32, [m, n], c => GemmInt8(a.Context, a, b, null, null, null, c));
    }

    /// <summary>Int8 GEMM with fused dequantization: <c>c[m,n] = acc[m,n] * aScales[m] * bScales[n] (+ bias[n])</c>.
    /// See <see cref="GemmInt8"/>.</summary>
    /// <param name="a">The left matrix, [M,K] i8.</param>
    /// <param name="b">The right matrix, [N,K] i8.</param>
    /// <param name="aScales">[M] f32.</param>
    /// <param name="bScales">[N] f32.</param>
    /// <param name="bias">[N] f32, or null.</param>
    /// <returns>c, a new [M,N] f32 tensor. Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="ArgumentException"><paramref name="a"/> or <paramref name="b"/> is not 2-D.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor MatMulInt8(Tensor a, Tensor b, Tensor aScales, Tensor bScales, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(aScales);
        ArgumentNullException.ThrowIfNull(bScales);
        var (m, _) = Matrix(a, nameof(a));
        var (n, _) = Matrix(b, nameof(b));
        return Allocate(a.Context, Dtype.F32, [m, n], c => GemmInt8(a.Context, a, b, aScales, bScales, bias, c));
    }

    /// <summary>Quantized linear layer into a new tensor: <c>y = dequant(quant_per_row(x) * w^T) + bias</c>.
    /// See <see cref="LinearInt8(Context, Tensor, Tensor, Tensor, Tensor?, Tensor)"/>.</summary>
    /// <param name="x">The input, [M,K] f32.</param>
    /// <param name="w">The weight, [N,K] i8, quantized per row.</param>
    /// <param name="wScales">The weight scales, [N] f32.</param>
    /// <param name="bias">[N] f32, or null.</param>
    /// <returns>y, a new [M,N] f32 tensor. Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> or <paramref name="w"/> is not 2-D.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor LinearInt8(Tensor x, Tensor w, Tensor wScales, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(w);
        var (m, _) = Matrix(x, nameof(x));
        var (n, _) = Matrix(w, nameof(w));
        return Allocate(x.Context, Dtype.F32, [m, n], y => LinearInt8(x.Context, x, w, wScales, bias, y));
    }
}
