using NativeEngine.Autograd;
using NativeEngine.Data;
using NativeEngine.Models;
using NativeEngine.Modules;

namespace NativeEngine.Tests.Training;

/// <summary>The smallest decoder-only language model the trainer tests need: token and learned position
/// embeddings, one causal pre-LN transformer block (with dropout), a final LayerNorm, and the loss over the tied
/// token embedding. Independent of the library's real models.</summary>
internal sealed class TinyLanguageModel : Module, ILanguageModel
{
    public TinyLanguageModel(Context context, int vocabularySize, int maxSequenceLength, int dimension = 16, int heads = 2,
        float dropout = 0f, ulong seed = 1) : base(context)
    {
        VocabularySize = vocabularySize;
        MaxSequenceLength = maxSequenceLength;
        Tokens = RegisterModule("tokens", new Embedding(context, vocabularySize, dimension));
        Positions = RegisterModule("positions", new LearnedPositionalEmbedding(context, maxSequenceLength, dimension));
        Block = RegisterModule("block", new TransformerBlock(context, dimension, heads, heads, 4 * dimension, causal: true, dropout));
        Norm = RegisterModule("norm", new LayerNorm(context, dimension));
        Initialization.Initialize(NamedParameters(), seed);
        Dropout.SeedAll(this, seed);
    }

    public Embedding Tokens { get; }

    public LearnedPositionalEmbedding Positions { get; }

    public TransformerBlock Block { get; }

    public LayerNorm Norm { get; }

    public Module Module => this;

    public int VocabularySize { get; }

    public int MaxSequenceLength { get; }

    public Variable Loss(TokenBatch batch, LossOptions options)
    {
        using var ids = Tensor.FromArray<int>(Context, batch.Inputs, batch.BatchSize, batch.SequenceLength);
        using var targets = Tensor.FromArray<int>(Context, batch.Targets, (long)batch.BatchSize * batch.SequenceLength);
        var x = Fn.Add(Tokens.Forward(ids), Positions.Forward(0, batch.SequenceLength));
        var hidden = Norm.Forward(Block.Forward(x));
        return options.Kind == LossKind.Sampled
            ? Fn.SampledSoftmaxLoss(hidden, Tokens.Weight, null, targets, options.Samples, options.Seed, batch.TargetCount)
            : Fn.CrossEntropyLoss(hidden, Tokens.Weight, null, targets, batch.TargetCount);
    }

    /// <summary>Every parameter's values, by name.</summary>
    public Dictionary<string, float[]> Snapshot() =>
        NamedParameters().ToDictionary(entry => entry.Key, entry => entry.Value.Value.ToArray<float>());
}
