using NativeEngine.Interop;

namespace NativeEngine;

// Softmax cross-entropy over an output projection: full (in chunks of classes) and sampled.
// Shapes: hidden [N, D], weight [V, D] (the output embedding), bias [V], targets [N] i32 (negative:
// the row is ignored), per-row losses [N]; S samples.
public static partial class Ops
{
    /// <summary>Chunked softmax cross-entropy forward (<c>ne_cross_entropy_forward</c>):
    /// <c>loss[n] = logsumexp(z_n) - z_n[target_n]</c> with <c>z = hidden weight^T + bias</c>, computed
    /// in chunks of classes so that the [N, V] logits never exist at once.</summary>
    /// <param name="context">The context the kernel runs on; every tensor must belong to it.</param>
    /// <param name="hidden">[N, D] f32.</param>
    /// <param name="weight">[V, D] f32.</param>
    /// <param name="bias">[V] f32, or null.</param>
    /// <param name="targets">[N] i32 in 0..V-1, or negative to ignore the row (loss 0).</param>
    /// <param name="loss">Receives the per-row losses, [N] f32.</param>
    /// <param name="lse">Receives each row's log-sum-exp, [N] f32, for the backward pass; or null.</param>
    /// <param name="chunkSize">Classes per chunk (bounds the working memory to N x chunkSize floats); 0 picks a default.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void CrossEntropyForward(Context context, Tensor hidden, Tensor weight, Tensor? bias, Tensor targets,
        Tensor loss, Tensor? lse = null, long chunkSize = 0)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = CrossEntropyParams(chunkSize, accumulate: false);
        NativeStatus.Check(NativeMethods.ne_cross_entropy_forward(context.Handle, &parameters,
            Required(hidden, nameof(hidden)), Required(weight, nameof(weight)), Optional(bias, nameof(bias)),
            Required(targets, nameof(targets)), Required(loss, nameof(loss)), Optional(lse, nameof(lse))));
    }

    /// <summary>Chunked softmax cross-entropy backward (<c>ne_cross_entropy_backward</c>): from
    /// <paramref name="dloss"/> and the forward pass's <paramref name="lse"/>, recomputes the logits
    /// chunk by chunk, overwrites <paramref name="dhidden"/> and writes (or adds into)
    /// <paramref name="dweight"/> and <paramref name="dbias"/>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="hidden">[N, D] f32.</param>
    /// <param name="weight">[V, D] f32.</param>
    /// <param name="bias">[V] f32, or null.</param>
    /// <param name="targets">[N] i32, as in the forward pass.</param>
    /// <param name="lse">The forward pass's log-sum-exp, [N].</param>
    /// <param name="dloss">The gradient of each row's loss, [N] (1/rows for a mean).</param>
    /// <param name="dhidden">Receives the gradient of hidden, [N, D].</param>
    /// <param name="dweight">Receives the gradient of weight, [V, D], or null.</param>
    /// <param name="dbias">Receives the gradient of bias, [V], or null.</param>
    /// <param name="accumulate">True adds into <paramref name="dweight"/> and <paramref name="dbias"/>; false overwrites them.</param>
    /// <param name="chunkSize">Classes per chunk; 0 picks a default.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void CrossEntropyBackward(Context context, Tensor hidden, Tensor weight, Tensor? bias, Tensor targets,
        Tensor lse, Tensor dloss, Tensor dhidden, Tensor? dweight = null, Tensor? dbias = null, bool accumulate = false,
        long chunkSize = 0)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = CrossEntropyParams(chunkSize, accumulate);
        NativeStatus.Check(NativeMethods.ne_cross_entropy_backward(context.Handle, &parameters,
            Required(hidden, nameof(hidden)), Required(weight, nameof(weight)), Optional(bias, nameof(bias)),
            Required(targets, nameof(targets)), Required(lse, nameof(lse)), Required(dloss, nameof(dloss)),
            Required(dhidden, nameof(dhidden)), Optional(dweight, nameof(dweight)), Optional(dbias, nameof(dbias))));
    }

    /// <summary>Per-row softmax cross-entropy of <c>hidden weight^T + bias</c> into a new tensor, on
    /// <paramref name="hidden"/>'s context. See <see cref="CrossEntropyForward"/>.</summary>
    /// <param name="hidden">[N, D] f32.</param>
    /// <param name="weight">[V, D] f32.</param>
    /// <param name="bias">[V] f32, or null.</param>
    /// <param name="targets">[N] i32; negative ignores the row.</param>
    /// <returns>The losses, a new [N] f32 tensor. Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="ArgumentException"><paramref name="hidden"/> is not 2-D.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor CrossEntropy(Tensor hidden, Tensor weight, Tensor? bias, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        var (rows, _) = Matrix(hidden, nameof(hidden));
        return Allocate(hidden.Context, Dtype.F32, [rows], loss => CrossEntropyForward(hidden.Context, hidden, weight, bias, targets, loss));
    }

    /// <summary>Log-uniform (Zipfian) candidate sampling (<c>ne_sample_log_uniform</c>) over classes
    /// ordered from most to least frequent, <c>P(c) = log((c + 2) / (c + 1)) / log(V + 1)</c>, with
    /// the expected counts that the sampled softmax correction needs. The draws depend only on
    /// <paramref name="seed"/>, S and V.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="numClasses">V, the number of classes.</param>
    /// <param name="seed">Seed of the draws.</param>
    /// <param name="unique">True: S distinct classes (S &lt;= V); false: S independent draws.</param>
    /// <param name="samples">Receives the sampled classes, [S] i32.</param>
    /// <param name="sampleExpectedCounts">Receives their expected counts, [S] f32.</param>
    /// <param name="targets">The true classes, [N] i32, or null.</param>
    /// <param name="targetExpectedCounts">Receives the true classes' expected counts, [N] f32 (with
    /// <paramref name="targets"/>), or null.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void SampleLogUniform(Context context, long numClasses, ulong seed, bool unique, Tensor samples,
        Tensor sampleExpectedCounts, Tensor? targets = null, Tensor? targetExpectedCounts = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = new NeSamplerParams
        {
            StructSize = (uint)sizeof(NeSamplerParams),
            NumClasses = numClasses,
            Seed = seed,
            Unique = unique ? 1 : 0,
        };
        NativeStatus.Check(NativeMethods.ne_sample_log_uniform(context.Handle, &parameters,
            Optional(targets, nameof(targets)), Required(samples, nameof(samples)),
            Required(sampleExpectedCounts, nameof(sampleExpectedCounts)), Optional(targetExpectedCounts, nameof(targetExpectedCounts))));
    }

    /// <summary>Sampled softmax loss forward (<c>ne_sampled_softmax_forward</c>): row n scores its target
    /// and the S samples, <c>z = hidden_n · weight_c + bias_c</c> (minus the log expected count of c
    /// with <paramref name="subtractLogExpectedCount"/>), and <c>loss[n] = logsumexp(z) - z_target</c>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="hidden">[N, D] f32.</param>
    /// <param name="weight">[V, D] f32.</param>
    /// <param name="bias">[V] f32, or null.</param>
    /// <param name="targets">[N] i32; negative ignores the row.</param>
    /// <param name="samples">[S] i32 from <see cref="SampleLogUniform"/>.</param>
    /// <param name="sampleExpectedCounts">[S] f32 from <see cref="SampleLogUniform"/>; may be null without the correction.</param>
    /// <param name="targetExpectedCounts">[N] f32 from <see cref="SampleLogUniform"/>; may be null without the correction.</param>
    /// <param name="loss">Receives the per-row losses, [N] f32.</param>
    /// <param name="probs">Receives each row's softmax over [target, samples], [N, S + 1] f32, for the
    /// backward pass; or null.</param>
    /// <param name="subtractLogExpectedCount">Apply the sampled softmax correction.</param>
    /// <param name="removeAccidentalHits">Leave a sample equal to a row's target out of that row's softmax.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void SampledSoftmaxForward(Context context, Tensor hidden, Tensor weight, Tensor? bias, Tensor targets,
        Tensor samples, Tensor? sampleExpectedCounts, Tensor? targetExpectedCounts, Tensor loss, Tensor? probs = null,
        bool subtractLogExpectedCount = true, bool removeAccidentalHits = true)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = SampledSoftmaxParams(subtractLogExpectedCount, removeAccidentalHits, accumulate: false);
        NativeStatus.Check(NativeMethods.ne_sampled_softmax_forward(context.Handle, &parameters,
            Required(hidden, nameof(hidden)), Required(weight, nameof(weight)), Optional(bias, nameof(bias)),
            Required(targets, nameof(targets)), Required(samples, nameof(samples)),
            Optional(sampleExpectedCounts, nameof(sampleExpectedCounts)), Optional(targetExpectedCounts, nameof(targetExpectedCounts)),
            Required(loss, nameof(loss)), Optional(probs, nameof(probs))));
    }

    /// <summary>Sampled softmax loss backward (<c>ne_sampled_softmax_backward</c>): from
    /// <paramref name="dloss"/> and the forward pass's <paramref name="probs"/>, overwrites
    /// <paramref name="dhidden"/> and writes (or adds into) <paramref name="dweight"/> and
    /// <paramref name="dbias"/> at the rows of the targets and samples; without
    /// <paramref name="accumulate"/>, their other rows are zeroed.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="hidden">[N, D] f32.</param>
    /// <param name="weight">[V, D] f32.</param>
    /// <param name="targets">[N] i32, as in the forward pass.</param>
    /// <param name="samples">[S] i32, as in the forward pass.</param>
    /// <param name="probs">The forward pass's probabilities, [N, S + 1].</param>
    /// <param name="dloss">The gradient of each row's loss, [N].</param>
    /// <param name="dhidden">Receives the gradient of hidden, [N, D].</param>
    /// <param name="dweight">Receives the gradient of weight, [V, D], or null.</param>
    /// <param name="dbias">Receives the gradient of bias, [V], or null.</param>
    /// <param name="accumulate">True adds into <paramref name="dweight"/> and <paramref name="dbias"/> at the
    /// touched rows; false overwrites them whole.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void SampledSoftmaxBackward(Context context, Tensor hidden, Tensor weight, Tensor targets, Tensor samples,
        Tensor probs, Tensor dloss, Tensor dhidden, Tensor? dweight = null, Tensor? dbias = null, bool accumulate = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = SampledSoftmaxParams(subtractLogExpectedCount: false, removeAccidentalHits: false, accumulate);
        NativeStatus.Check(NativeMethods.ne_sampled_softmax_backward(context.Handle, &parameters,
            Required(hidden, nameof(hidden)), Required(weight, nameof(weight)), Required(targets, nameof(targets)),
            Required(samples, nameof(samples)), Required(probs, nameof(probs)), Required(dloss, nameof(dloss)),
            Required(dhidden, nameof(dhidden)), Optional(dweight, nameof(dweight)), Optional(dbias, nameof(dbias))));
    }

    private static unsafe NeCrossEntropyParams CrossEntropyParams(long chunkSize, bool accumulate) => new()
    {
        StructSize = (uint)sizeof(NeCrossEntropyParams),
        ChunkSize = chunkSize,
        Accumulate = accumulate ? 1 : 0,
    };

    private static unsafe NeSampledSoftmaxParams SampledSoftmaxParams(bool subtractLogExpectedCount, bool removeAccidentalHits,
        bool accumulate) => new()
    {
        StructSize = (uint)sizeof(NeSampledSoftmaxParams),
        SubtractLogExpectedCount = subtractLogExpectedCount ? 1 : 0,
        RemoveAccidentalHits = removeAccidentalHits ? 1 : 0,
        Accumulate = accumulate ? 1 : 0,
    };
}
