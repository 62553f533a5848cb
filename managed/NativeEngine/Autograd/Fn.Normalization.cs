namespace NativeEngine.Autograd;

/// <summary>The two outputs of a normalization with a fused residual add.</summary>
/// <param name="Output">The normalized output <c>y</c>.</param>
/// <param name="Sum">The normalized input <c>s = x + residual</c>, the residual stream for the next residual
/// connection; without a residual, the input <c>x</c> itself (the same variable).</param>
public readonly record struct NormOutput(Variable Output, Variable Sum);

// LayerNorm and RMSNorm with the fused residual add.
public static partial class Fn
{
    /// <summary>Fused residual add + LayerNorm over the last dimension (<c>ne_layernorm_forward</c>):
    /// <c>s = x + residual</c> (or <c>x</c>), <c>y = (s - mean(s)) / sqrt(var(s) + epsilon) * gamma + beta</c>.
    /// Backward (<c>ne_layernorm_backward</c>) takes the gradient of both outputs: the gradient reaching
    /// <c>s</c> from its other uses (the next residual connection) is fused into the kernel's <c>ds</c>, and the
    /// result is the gradient of both <paramref name="x"/> and <paramref name="residual"/>.</summary>
    /// <param name="x">The input, [..., C].</param>
    /// <param name="residual">Added to <paramref name="x"/> before normalizing, [..., C]; or null.</param>
    /// <param name="gamma">The scale, [C].</param>
    /// <param name="beta">The shift, [C]; or null.</param>
    /// <param name="epsilon">Added to the variance.</param>
    /// <returns>The output and the sum. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is a scalar.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static NormOutput LayerNorm(Variable x, Variable? residual, Variable gamma, Variable? beta,
        float epsilon = Ops.DefaultEpsilon) => Normalize(x, residual, gamma, beta, epsilon, rms: false);

    /// <summary>Fused residual add + RMSNorm over the last dimension (<c>ne_rmsnorm_forward</c>):
    /// <c>s = x + residual</c> (or <c>x</c>), <c>y = s / sqrt(mean(s^2) + epsilon) * gamma</c>. See
    /// <see cref="LayerNorm"/> for the outputs and gradients.</summary>
    /// <param name="x">The input, [..., C].</param>
    /// <param name="residual">Added to <paramref name="x"/> before normalizing; or null.</param>
    /// <param name="gamma">The scale, [C].</param>
    /// <param name="epsilon">Added to the mean square.</param>
    /// <returns>The output and the sum. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is a scalar.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static NormOutput RmsNorm(Variable x, Variable? residual, Variable gamma, float epsilon = Ops.DefaultEpsilon) =>
        Normalize(x, residual, gamma, null, epsilon, rms: true);

    private static NormOutput Normalize(Variable x, Variable? residual, Variable gamma, Variable? beta, float epsilon, bool rms)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(gamma);
        var shape = RequireRank(x, 1, nameof(x));
        var tape = GradientTape.ForRecording(x.RequiresGrad || residual is { RequiresGrad: true } || gamma.RequiresGrad ||
            beta is { RequiresGrad: true });
        var context = x.Context;
        var rows = x.Value.ElementCount / shape[^1];
        var y = NewOutput(context, tape, shape);
        var sum = residual is null ? null : NewOutput(context, tape, shape);
        var mean = tape is null || rms ? null : tape.NewTensor(context, [rows]);
        var rstd = tape?.NewTensor(context, [rows]);
        Run(() =>
        {
            if (rms)
            {
                Ops.RmsNormForward(context, x.Value, residual?.Value, gamma.Value, y, sum, rstd, epsilon);
            }
            else
            {
                Ops.LayerNormForward(context, x.Value, residual?.Value, gamma.Value, beta?.Value, y, sum, mean, rstd, epsilon);
            }
        }, y, sum, mean, rstd);
        var output = Result(y, tape);
        var sumVariable = sum is null ? null : Result(sum, tape);
        if (tape is not null)
        {
            var s = sum ?? x.Value;
            tape.Record(() => NormalizeBackward(tape, x, residual, gamma, beta, output, sumVariable, s, mean, rstd!, rms),
                output, sumVariable);
        }
        return new NormOutput(output, sumVariable ?? x);
    }

    private static void NormalizeBackward(GradientTape tape, Variable x, Variable? residual, Variable gamma, Variable? beta,
        Variable output, Variable? sum, Tensor s, Tensor? mean, Tensor rstd, bool rms)
    {
        var context = x.Context;
        var dy = GradientTape.OutputGradient(output);
        var dsOwned = sum is null ? null : tape.TakeGradient(sum);
        var ds = dsOwned ?? (sum is null ? null : GradientTape.OutputGradient(sum));
        if (dy is null)
        {
            // Only the sum's gradient flows: straight through the addition to x and the residual.
            if (dsOwned is not null)
            {
                tape.Distribute(dsOwned, x, residual);
            }
            else if (ds is not null)
            {
                tape.AddGradient(x, ds, transferable: false);
                tape.AddGradient(residual, ds, transferable: false);
            }
            return;
        }
        tape.GradientsForKernel(gamma, rms ? null : beta, out var dgamma, out var dbeta, out var accumulate);

        void Kernel(Tensor? fused, Tensor dx)
        {
            if (rms)
            {
                Ops.RmsNormBackward(context, dy, fused, s, gamma.Value, rstd, dx, dgamma, accumulate);
            }
            else
            {
                Ops.LayerNormBackward(context, dy, fused, s, gamma.Value, mean!, rstd, dx, dgamma, dbeta, accumulate);
            }
        }

        if (residual is null)
        {
            // s is x itself: the gradient x already received from its other uses is the kernel's ds, in place.
            if (x is { RequiresGrad: true, GradHasValue: true })
            {
                var gradient = x.GradTensor!;
                Kernel(gradient, gradient);
            }
            else if (x.RequiresGrad)
            {
                Kernel(null, tape.GradientForKernel(x, out _));
            }
            else
            {
                using var scratch = tape.NewTensor(context, x.Shape);
                Kernel(null, scratch);
            }
            return;
        }
        // dx = backward(dy) + ds is the gradient of both x and the residual; computed in place into ds when the
        // sum's gradient could be taken, and handed on without a copy where possible.
        var dxOwned = dsOwned ?? tape.NewTensor(context, x.Shape);
        Kernel(ds, dxOwned);
        tape.Distribute(dxOwned, x, residual);
    }
}
