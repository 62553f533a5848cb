using NativeEngine.Modules;

namespace NativeEngine.Models;

/// <summary>Argument checks and small helpers shared by the language models.</summary>
internal static class LanguageModelChecks
{
    /// <summary>Checks that <paramref name="ids"/> is [B, T] i32; returns B and T.</summary>
    public static (long Batch, long Tokens) Ids(Tensor ids, string name)
    {
        ArgumentNullException.ThrowIfNull(ids, name);
        if (ids.Rank != 2 || ids.Dtype != Dtype.I32)
        {
            throw new ArgumentException($"Token ids must be [B, T] I32; got {ids.Dtype} {ModelWeights.Format(ids.Shape)}.", name);
        }
        return (ids.Shape[0], ids.Shape[1]);
    }

    /// <summary>Checks new tokens against a cache of a model of <paramref name="config"/>; returns B and Tnew.</summary>
    public static (long Batch, int Tokens) CacheIds(Tensor ids, KeyValueCache cache, TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(cache);
        var (batch, tokens) = Ids(ids, nameof(ids));
        if (cache.Layers != config.Layers || cache.KvHeads != config.KvHeads || cache.HeadDim != config.HeadDimension)
        {
            throw new ArgumentException(
                $"The cache has {cache.Layers} layers of {cache.KvHeads} x {cache.HeadDim} keys; this model needs {config.Layers} layers of " +
                $"{config.KvHeads} x {config.HeadDimension}. Create it with the model's CreateCache.", nameof(cache));
        }
        if (batch != cache.Batch)
        {
            throw new ArgumentException($"The ids hold {batch} sequences; the cache holds {cache.Batch}.", nameof(ids));
        }
        if (cache.Length + tokens > Math.Min(cache.MaxLength, config.MaxSequenceLength))
        {
            throw new ArgumentOutOfRangeException(nameof(ids),
                $"{cache.Length} cached + {tokens} new tokens exceed the cache's {cache.MaxLength} positions or the model's {config.MaxSequenceLength}.");
        }
        return (batch, (int)tokens);
    }

    /// <summary>Checks that sampled-softmax options ask for 1 to V samples.</summary>
    public static void Options(LossOptions options, int vocabularySize)
    {
        if (options.Kind == LossKind.Sampled && (options.Samples < 1 || options.Samples > vocabularySize))
        {
            throw new ArgumentOutOfRangeException(nameof(options),
                $"LossOptions.Samples is {options.Samples}; the sampled softmax needs 1 to V = {vocabularySize} samples.");
        }
        if (options.Kind is not (LossKind.Full or LossKind.Sampled))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"LossOptions.Kind {options.Kind} is not a LossKind.");
        }
    }

    /// <summary>The logits of the last position: the [B, C] strided view of <paramref name="hidden"/> [B, T, C]
    /// times <paramref name="outputWeight"/>^T.</summary>
    /// <returns>[B, V]. Ownership: the current scope, or the caller.</returns>
    public static Tensor LastPositionLogits(Tensor hidden, Tensor outputWeight)
    {
        long batch = hidden.Shape[0], tokens = hidden.Shape[1], width = hidden.Shape[2];
        using var last = hidden.View(hidden.Offset + (tokens - 1) * hidden.Strides[1], [batch, width], [hidden.Strides[0], hidden.Strides[2]]);
        return Ops.MatMul(last, outputWeight, transposeB: true);
    }
}
