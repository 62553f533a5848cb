using NativeEngine.Interop;

namespace NativeEngine;

// The fused AdamW update of one parameter tensor.
public static partial class Ops
{
    /// <summary>One fused AdamW update of a parameter tensor (<c>ne_adamw_step</c>; Loshchilov and Hutter, as
    /// PyTorch's AdamW): <c>g = grad * gradScale * clip</c>, <c>m = beta1 m + (1 - beta1) g</c>,
    /// <c>v = beta2 v + (1 - beta2) g^2</c>,
    /// <c>param -= learningRate * (m / (1 - beta1^step) / (sqrt(v / (1 - beta2^step)) + epsilon) + weightDecay * param)</c>.
    /// With <paramref name="maxGradNorm"/> &gt; 0, <c>clip = min(1, maxGradNorm / (|gradScale| sqrt(gradNormSquared)))</c>
    /// is read where the kernel runs (no round trip to the host); otherwise clip = 1.</summary>
    /// <param name="context">The context the kernel runs on; every tensor must belong to it.</param>
    /// <param name="param">The parameter, updated in place; f32 of any shape.</param>
    /// <param name="grad">Its gradient, <paramref name="param"/>'s shape.</param>
    /// <param name="m">The first moment estimate, <paramref name="param"/>'s shape, updated in place (zero before step 1).</param>
    /// <param name="v">The second moment estimate, <paramref name="param"/>'s shape, updated in place (zero before step 1).</param>
    /// <param name="learningRate">Step size; finite, &gt;= 0.</param>
    /// <param name="step">1-based index of this step, for the bias corrections <c>1 - beta^step</c>.</param>
    /// <param name="beta1">Decay rate of the first moment, in [0, 1).</param>
    /// <param name="beta2">Decay rate of the second moment, in [0, 1).</param>
    /// <param name="epsilon">Added to the root of the second moment; &gt; 0.</param>
    /// <param name="weightDecay">Decoupled weight decay, &gt;= 0.</param>
    /// <param name="gradScale">Multiplies the gradient before use (loss scaling, gradient accumulation); finite.</param>
    /// <param name="maxGradNorm">&gt; 0 clips the gradient to this global norm (needs
    /// <paramref name="gradNormSquared"/>); 0 does not clip.</param>
    /// <param name="gradNormSquared">The sum of squares of every parameter's raw gradient, a one-element f32
    /// tensor (<see cref="ReduceSum"/> with squares and accumulate over all of them); or null without clipping.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void AdamWStep(Context context, Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate,
        long step, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0.01f,
        float gradScale = 1f, float maxGradNorm = 0f, Tensor? gradNormSquared = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = new NeAdamwParams
        {
            StructSize = (uint)sizeof(NeAdamwParams),
            LearningRate = learningRate,
            Beta1 = beta1,
            Beta2 = beta2,
            Epsilon = epsilon,
            WeightDecay = weightDecay,
            Step = step,
            GradScale = gradScale,
            MaxGradNorm = maxGradNorm,
        };
        NativeStatus.Check(NativeMethods.ne_adamw_step(context.Handle, &parameters,
            Required(param, nameof(param)), Required(grad, nameof(grad)), Required(m, nameof(m)), Required(v, nameof(v)),
            Optional(gradNormSquared, nameof(gradNormSquared))));
    }
}
