using NativeEngine.Autograd;
using NativeEngine.Data;
using NativeEngine.Modules;

namespace NativeEngine.Models;

/// <summary>Which softmax the training loss uses.</summary>
public enum LossKind
{
    /// <summary>The full softmax cross-entropy, fused with the output projection in vocabulary chunks.</summary>
    Full,

    /// <summary>Sampled softmax over log-uniform candidates, for large vocabularies (evaluation stays full).</summary>
    Sampled,
}

/// <summary>How a training loss is computed.</summary>
/// <param name="Kind">Full or sampled softmax.</param>
/// <param name="Samples">The number of sampled classes per step (<see cref="LossKind.Sampled"/> only).</param>
/// <param name="Seed">The sampler's seed for this step; the trainer derives it from its seed and the step.</param>
public readonly record struct LossOptions(LossKind Kind = LossKind.Full, int Samples = 0, ulong Seed = 0)
{
    /// <summary>The full softmax cross-entropy.</summary>
    public static LossOptions Full => default;
}

/// <summary>
/// A model that predicts the next token of each position of a <see cref="TokenBatch"/>: what the trainer,
/// the evaluator and the CLI work with.
/// </summary>
/// <remarks>Ownership: the model owns its parameters (its <see cref="Module"/>); disposing the model frees them.</remarks>
public interface ILanguageModel : IDisposable
{
    /// <summary>The root module: parameters, train/eval mode.</summary>
    Module Module { get; }

    /// <summary>The number of token ids the model knows (V).</summary>
    int VocabularySize { get; }

    /// <summary>The longest sequence the model accepts (its positional table).</summary>
    int MaxSequenceLength { get; }

    /// <summary>The mean loss over the non-ignored targets of <paramref name="batch"/> (its
    /// <see cref="TokenBatch.TargetCount"/>), a scalar. Records on the current <see cref="GradientTape"/>.</summary>
    /// <param name="batch">Inputs and targets, [B, T]; targets of -1 are ignored.</param>
    /// <param name="options">Full or sampled softmax.</param>
    /// <returns>The loss, owned by the current tape or <see cref="TensorScope"/>.</returns>
    Variable Loss(TokenBatch batch, LossOptions options);
}
