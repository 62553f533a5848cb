using NativeEngine.Interop;

namespace NativeEngine;

/// <summary>
/// The kernels: fused residual-add + LayerNorm / RMSNorm (forward and backward) and int8
/// quantization, dequantization, GEMM and linear.
/// </summary>
/// <remarks>
/// <para>Two flavours. The thin wrappers (<c>LayerNormForward</c>, <c>QuantizeInt8</c>, ...) map one
/// to one onto the C functions: the caller passes every tensor, outputs included, and an optional
/// argument passed as <see langword="null"/> is NULL to the library. The allocating conveniences
/// (<see cref="LayerNorm"/>, <see cref="Quantize"/>, <see cref="Gemm(Tensor, Tensor)"/>, ...) run on the
/// context of their first tensor and return new output tensors that the caller owns (or the
/// current <see cref="TensorScope"/> does); if the kernel fails they dispose those outputs before
/// throwing.</para>
/// <para>Shapes use N rows of C channels for the normalizations (any rank &gt;= 1: the last dimension
/// is C and must have stride 1; the leading dimensions are the rows, which may be strided) and
/// M, N, K for the GEMM: <c>C[M,N] = A[M,K] * B[N,K]^T</c>. The library validates every shape, dtype
/// and context and reports a violation as <see cref="NativeEngineException"/> naming the argument
/// (<see cref="Status.ShapeMismatch"/>, <see cref="Status.DtypeMismatch"/>,
/// <see cref="Status.ContextMismatch"/>, ...); a failing call leaves its outputs untouched.
/// Every method throws <see cref="ArgumentNullException"/> for a required tensor that is null and
/// <see cref="ObjectDisposedException"/> for a disposed context or tensor.</para>
/// </remarks>
public static class Ops
{
    /// <summary>The epsilon the normalizations use unless told otherwise.</summary>
    public const float DefaultEpsilon = 1e-5f;

    // -------------------------------------------------------------------------------------------
    // Normalization: thin wrappers
    // -------------------------------------------------------------------------------------------

    /// <summary>Fused residual-add + LayerNorm over the last dimension (<c>ne_layernorm_forward</c>):
    /// <c>s = x + residual</c> (or <c>x</c>), <c>y = (s - mean(s)) * rstd * gamma + beta</c>,
    /// <c>rstd = 1 / sqrt(var(s) + epsilon)</c>. f32 on the CPU.</summary>
    /// <param name="context">The context the kernel runs on; every tensor must belong to it.</param>
    /// <param name="x">The input, [N,C].</param>
    /// <param name="residual">[N,C] added to <paramref name="x"/>, or null.</param>
    /// <param name="gamma">The scale, [C].</param>
    /// <param name="beta">The shift, [C], or null for none.</param>
    /// <param name="y">The output, [N,C]; may be the same tensor as <paramref name="x"/>.</param>
    /// <param name="sum">Receives <c>s</c>, [N,C], for the next residual connection, or null; may be
    /// <paramref name="x"/> or <paramref name="residual"/>.</param>
    /// <param name="mean">Receives the row means, [N], for the backward pass, or null; set together
    /// with <paramref name="rstd"/> or not at all.</param>
    /// <param name="rstd">Receives the row reciprocal standard deviations, [N], or null.</param>
    /// <param name="epsilon">Added to the variance; finite and &gt; 0.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void LayerNormForward(Context context, Tensor x, Tensor? residual, Tensor gamma, Tensor? beta,
        Tensor y, Tensor? sum = null, Tensor? mean = null, Tensor? rstd = null, float epsilon = DefaultEpsilon)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = NormParams(epsilon, accumulate: false);
        NativeStatus.Check(NativeMethods.ne_layernorm_forward(context.Handle, &parameters,
            Required(x, nameof(x)), Optional(residual, nameof(residual)), Required(gamma, nameof(gamma)),
            Optional(beta, nameof(beta)), Required(y, nameof(y)), Optional(sum, nameof(sum)),
            Optional(mean, nameof(mean)), Optional(rstd, nameof(rstd))));
    }

    /// <summary>LayerNorm backward (<c>ne_layernorm_backward</c>): from <paramref name="dy"/> (and
    /// <paramref name="ds"/>, the gradient reaching <c>s</c> from its other uses), computes
    /// <paramref name="dx"/> = d(loss)/ds (also the residual's gradient) and the row sums
    /// <paramref name="dgamma"/>, <paramref name="dbeta"/>, reduced in a fixed order (the bits do
    /// not depend on the thread count).</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="dy">The output gradient, [N,C].</param>
    /// <param name="ds">The gradient reaching <c>s</c> from elsewhere, [N,C], or null.</param>
    /// <param name="s">The normalized input of the forward pass (its <c>sum</c>, or <c>x</c> without
    /// a residual), [N,C].</param>
    /// <param name="gamma">The scale, [C].</param>
    /// <param name="mean">The row means from the forward pass, [N].</param>
    /// <param name="rstd">The row reciprocal standard deviations from the forward pass, [N].</param>
    /// <param name="dx">Receives the input gradient, [N,C]; may be <paramref name="dy"/> or <paramref name="ds"/>.</param>
    /// <param name="dgamma">Receives the gradient of gamma, [C], or null.</param>
    /// <param name="dbeta">Receives the gradient of beta, [C], or null.</param>
    /// <param name="accumulate">True adds into <paramref name="dgamma"/> and <paramref name="dbeta"/>;
    /// false overwrites them.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void LayerNormBackward(Context context, Tensor dy, Tensor? ds, Tensor s, Tensor gamma,
        Tensor mean, Tensor rstd, Tensor dx, Tensor? dgamma = null, Tensor? dbeta = null, bool accumulate = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = NormParams(DefaultEpsilon, accumulate);
        NativeStatus.Check(NativeMethods.ne_layernorm_backward(context.Handle, &parameters,
            Required(dy, nameof(dy)), Optional(ds, nameof(ds)), Required(s, nameof(s)), Required(gamma, nameof(gamma)),
            Required(mean, nameof(mean)), Required(rstd, nameof(rstd)), Required(dx, nameof(dx)),
            Optional(dgamma, nameof(dgamma)), Optional(dbeta, nameof(dbeta))));
    }

    /// <summary>Fused residual-add + RMSNorm over the last dimension (<c>ne_rmsnorm_forward</c>):
    /// <c>s = x + residual</c> (or <c>x</c>), <c>y = s * rstd * gamma</c>,
    /// <c>rstd = 1 / sqrt(mean(s^2) + epsilon)</c>. f32 on the CPU.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="x">The input, [N,C].</param>
    /// <param name="residual">[N,C] added to <paramref name="x"/>, or null.</param>
    /// <param name="gamma">The scale, [C].</param>
    /// <param name="y">The output, [N,C]; may be the same tensor as <paramref name="x"/>.</param>
    /// <param name="sum">Receives <c>s</c>, [N,C], or null; may be <paramref name="x"/> or <paramref name="residual"/>.</param>
    /// <param name="rstd">Receives the row reciprocal RMS values, [N], for the backward pass, or null.</param>
    /// <param name="epsilon">Added to the mean square; finite and &gt; 0.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void RmsNormForward(Context context, Tensor x, Tensor? residual, Tensor gamma, Tensor y,
        Tensor? sum = null, Tensor? rstd = null, float epsilon = DefaultEpsilon)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = NormParams(epsilon, accumulate: false);
        NativeStatus.Check(NativeMethods.ne_rmsnorm_forward(context.Handle, &parameters,
            Required(x, nameof(x)), Optional(residual, nameof(residual)), Required(gamma, nameof(gamma)),
            Required(y, nameof(y)), Optional(sum, nameof(sum)), Optional(rstd, nameof(rstd))));
    }

    /// <summary>RMSNorm backward (<c>ne_rmsnorm_backward</c>): as <see cref="LayerNormBackward"/>
    /// without the mean and beta.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="dy">The output gradient, [N,C].</param>
    /// <param name="ds">The gradient reaching <c>s</c> from elsewhere, [N,C], or null.</param>
    /// <param name="s">The normalized input of the forward pass, [N,C].</param>
    /// <param name="gamma">The scale, [C].</param>
    /// <param name="rstd">The row reciprocal RMS values from the forward pass, [N].</param>
    /// <param name="dx">Receives the input gradient, [N,C]; may be <paramref name="dy"/> or <paramref name="ds"/>.</param>
    /// <param name="dgamma">Receives the gradient of gamma, [C], or null.</param>
    /// <param name="accumulate">True adds into <paramref name="dgamma"/>; false overwrites it.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void RmsNormBackward(Context context, Tensor dy, Tensor? ds, Tensor s, Tensor gamma,
        Tensor rstd, Tensor dx, Tensor? dgamma = null, bool accumulate = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = NormParams(DefaultEpsilon, accumulate);
        NativeStatus.Check(NativeMethods.ne_rmsnorm_backward(context.Handle, &parameters,
            Required(dy, nameof(dy)), Optional(ds, nameof(ds)), Required(s, nameof(s)), Required(gamma, nameof(gamma)),
            Required(rstd, nameof(rstd)), Required(dx, nameof(dx)), Optional(dgamma, nameof(dgamma))));
    }

    // -------------------------------------------------------------------------------------------
    // Int8: thin wrappers
    // -------------------------------------------------------------------------------------------

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

    // -------------------------------------------------------------------------------------------
    // Allocating conveniences
    // -------------------------------------------------------------------------------------------

    /// <summary>LayerNorm of <paramref name="x"/> (plus <paramref name="residual"/>) into a new tensor,
    /// on <paramref name="x"/>'s context. See <see cref="LayerNormForward"/>.</summary>
    /// <param name="x">The input, [N,C] f32 (any rank &gt;= 1).</param>
    /// <param name="gamma">The scale, [C].</param>
    /// <param name="beta">The shift, [C], or null.</param>
    /// <param name="epsilon">Added to the variance; finite and &gt; 0.</param>
    /// <param name="residual">[N,C] added to <paramref name="x"/> first, or null.</param>
    /// <returns>y, a new f32 tensor of <paramref name="x"/>'s shape. Ownership: the caller (or the current
    /// <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor LayerNorm(Tensor x, Tensor gamma, Tensor? beta = null, float epsilon = DefaultEpsilon, Tensor? residual = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocate(x.Context, Dtype.F32, x.Shape, y => LayerNormForward(x.Context, x, residual, gamma, beta, y, epsilon: epsilon));
    }

    /// <summary>RMSNorm of <paramref name="x"/> (plus <paramref name="residual"/>) into a new tensor,
    /// on <paramref name="x"/>'s context. See <see cref="RmsNormForward"/>.</summary>
    /// <param name="x">The input, [N,C] f32 (any rank &gt;= 1).</param>
    /// <param name="gamma">The scale, [C].</param>
    /// <param name="epsilon">Added to the mean square; finite and &gt; 0.</param>
    /// <param name="residual">[N,C] added to <paramref name="x"/> first, or null.</param>
    /// <returns>y, a new f32 tensor of <paramref name="x"/>'s shape. Ownership: the caller (or the current
    /// <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor RmsNorm(Tensor x, Tensor gamma, float epsilon = DefaultEpsilon, Tensor? residual = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocate(x.Context, Dtype.F32, x.Shape, y => RmsNormForward(x.Context, x, residual, gamma, y, epsilon: epsilon));
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
    public static Tensor Gemm(Tensor a, Tensor b)
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
    public static Tensor Gemm(Tensor a, Tensor b, Tensor aScales, Tensor bScales, Tensor? bias = null)
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
    /// See <see cref="LinearInt8"/>.</summary>
    /// <param name="x">The input, [M,K] f32.</param>
    /// <param name="w">The weight, [N,K] i8, quantized per row.</param>
    /// <param name="wScales">The weight scales, [N] f32.</param>
    /// <param name="bias">[N] f32, or null.</param>
    /// <returns>y, a new [M,N] f32 tensor. Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> or <paramref name="w"/> is not 2-D.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Linear(Tensor x, Tensor w, Tensor wScales, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(w);
        var (m, _) = Matrix(x, nameof(x));
        var (n, _) = Matrix(w, nameof(w));
        return Allocate(x.Context, Dtype.F32, [m, n], y => LinearInt8(x.Context, x, w, wScales, bias, y));
    }

    // -------------------------------------------------------------------------------------------

    private static NeNormParams NormParams(float epsilon, bool accumulate) => new()
    {
        StructSize = (uint)System.Runtime.CompilerServices.Unsafe.SizeOf<NeNormParams>(),
        Epsilon = epsilon,
        Accumulate = accumulate ? 1 : 0,
    };

    private static TensorHandle Required(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        return tensor.HandleFor(name);
    }

    private static TensorHandle Optional(Tensor? tensor, string name) =>
        tensor is null ? TensorHandle.Null : tensor.HandleFor(name);

    // The rows and columns of a 2-D tensor; the output shapes of the allocating GEMMs need them.
    private static (long Rows, long Cols) Matrix(Tensor tensor, string name)
    {
        var shape = tensor.Shape;
        if (shape.Count != 2)
        {
            throw new ArgumentException(
                $"Expected a 2-D matrix for '{name}', got a tensor of shape [{string.Join(", ", shape)}].", name);
        }
        return (shape[0], shape[1]);
    }

    // Creates an output, runs the kernel into it, and disposes it if the kernel fails.
    private static Tensor Allocate(Context context, Dtype dtype, IReadOnlyList<long> shape, Action<Tensor> kernel)
    {
        Span<long> dims = stackalloc long[shape.Count];
        for (var i = 0; i < dims.Length; i++)
        {
            dims[i] = shape[i];
        }
        var output = Tensor.Create(context, dtype, dims);
        try
        {
            kernel(output);
            return output;
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }
}
