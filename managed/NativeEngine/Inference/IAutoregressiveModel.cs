using NativeEngine.Modules;

namespace NativeEngine.Inference;

/// <summary>
/// A model that decodes incrementally over a <see cref="KeyValueCache"/>: what <see cref="Generator"/> drives.
/// Implemented by the fp32 <see cref="Models.DecoderOnlyTransformer"/> and the int8
/// <see cref="Models.QuantizedLanguageModel"/>.
/// </summary>
public interface IAutoregressiveModel
{
    /// <summary>The context of the model's tensors.</summary>
    Context Context { get; }

    /// <summary>V.</summary>
    int VocabularySize { get; }

    /// <summary>The most tokens a sequence may hold (the positional table's length).</summary>
    int MaxSequenceLength { get; }

    /// <summary>Allocates a cache for every self-attention layer of the model.</summary>
    /// <param name="batch">The number of sequences decoded together.</param>
    /// <param name="maxLength">The most tokens per sequence, 1 to <see cref="MaxSequenceLength"/>.</param>
    /// <returns>An empty cache. Ownership: the caller owns and disposes it.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range.</exception>
    KeyValueCache CreateCache(int batch, int maxLength);

    /// <summary>Runs the new tokens through the model (nothing recorded), appending their keys and values to
    /// <paramref name="cache"/> at its current length and advancing it, and returns the logits that follow the
    /// last new token of each sequence.</summary>
    /// <param name="ids">The new tokens, [B, Tnew] i32 (B the cache's batch).</param>
    /// <param name="cache">A cache of this model.</param>
    /// <returns>The logits, [B, V] f32. Ownership: the current <see cref="TensorScope"/>, or the caller.</returns>
    /// <exception cref="ArgumentException">The ids do not fit the cache.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The tokens would exceed the cache or the positional table.</exception>
    Tensor NextTokenLogits(Tensor ids, KeyValueCache cache);
}
