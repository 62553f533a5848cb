using NativeEngine.Interop;

namespace NativeEngine;

// Fused residual-add + LayerNorm / RMSNorm. Shapes: N rows of C channels (any rank >= 1: the last
// dimension is C and must have stride 1; the leading dimensions are the rows, which may be strided).
public static partial class Ops
{
    /// <summary>The epsilon the normalizations use unless told otherwise.</summary>
    public const float DefaultEpsilon = 1e-5f;

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

    private static NeNormParams NormParams(float epsilon, bool accumulate) => new()
    {
        StructSize = (uint)System.Runtime.CompilerServices.Unsafe.SizeOf<NeNormParams>(),
        Epsilon = epsilon,
        Accumulate = accumulate ? 1 : 0,
    };
}
