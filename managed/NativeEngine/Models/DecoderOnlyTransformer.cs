using NativeEngine.Autograd;
using NativeEngine.Checkpoints;
using NativeEngine.Data;
using NativeEngine.Inference;
using NativeEngine.Modules;

namespace NativeEngine.Models;

/// <summary>
/// A GPT-style decoder-only transformer: token embedding plus positional encoding, dropout, pre-LN causal
/// <see cref="TransformerBlock"/>s, a final LayerNorm, and an output projection that is the token embedding
/// itself when <see cref="TransformerConfig.TieEmbeddings"/> is set.
/// </summary>
/// <remarks>
/// <para>Residual adds are fused into the next LayerNorm: each block leaves its MLP's residual add pending
/// (<see cref="BlockOutput"/>), the next block's first LayerNorm performs it, and the last one is performed by the
/// final LayerNorm.</para>
/// <para>Parameter names: <c>token_embedding.weight</c> [V, C], <c>position_embedding.weight</c> [max length, C]
/// (learned positions only), <c>blocks.{i}.{ln1, attention.qkv, attention.proj, ln2, mlp.fc, mlp.proj}.{weight,
/// bias}</c>, <c>ln_f.weight</c>, <c>ln_f.bias</c>, and <c>lm_head.weight</c> [V, C] when the embeddings are not
/// tied (a tied model has one shared parameter, listed and counted once).</para>
/// <para>Initialization (GPT-2), from the constructor's seed through <see cref="Initialization"/> (one stream per
/// parameter name): weights N(0, 0.02), the residual output projections (<c>attention.proj</c>, <c>mlp.proj</c>)
/// N(0, 0.02 / sqrt(2 layers)), biases 0, LayerNorm weights 1. Dropout masks are seeded from the same seed and
/// each dropout's name (<see cref="Dropout.SeedAll"/>).</para>
/// <para>Ownership: the model owns its parameters; dispose it. Threading: one thread at a time, like its
/// context.</para>
/// </remarks>
public sealed class DecoderOnlyTransformer : Module, ILanguageModel, IAutoregressiveModel
{
    /// <summary>The architecture name of this class in checkpoints (<see cref="ModelCheckpoint"/>).</summary>
    public const string Architecture = "decoder-only";

    /// <summary>The standard deviation of GPT-2's initialization.</summary>
    public const float InitStd = 0.02f;

    private readonly Linear? _head;

    /// <summary>Creates and initializes a model.</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="config">The configuration; validated, with <see cref="TransformerConfig.EncoderLayers"/> 0.</param>
    /// <param name="seed">The seed of the initialization and of the dropout masks.</param>
    /// <remarks>Ownership: the caller owns the model and disposes it.</remarks>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The configuration is invalid, or describes an encoder-decoder model.</exception>
    public DecoderOnlyTransformer(Context context, TransformerConfig config, ulong seed = 0) : base(context)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (config.EncoderLayers != 0)
        {
            throw new ArgumentException(
                $"TransformerConfig.EncoderLayers is {config.EncoderLayers}; a decoder-only model needs 0 (use EncoderDecoderTransformer).",
                nameof(config));
        }
        Config = config;
        try
        {
            int c = config.ModelDimension, layers = config.Layers;
            TokenEmbedding = RegisterModule("token_embedding", new Embedding(context, config.VocabularySize, c, InitStd));
            Position = RegisterModule("position_embedding", CreatePositionalEncoding(context, config));
            EmbeddingDropout = RegisterModule("dropout", new Dropout(context, config.Dropout));
            var residualStd = InitStd / MathF.Sqrt(2f * layers);
            Blocks = RegisterModule("blocks", new ModuleList<TransformerBlock>(context, Enumerable.Range(0, layers).Select(_ =>
                new TransformerBlock(context, c, config.Heads, config.KvHeads, config.MlpDimension, causal: true,
                    config.Dropout, config.Epsilon, InitStd, residualStd))));
            FinalNorm = RegisterModule("ln_f", new LayerNorm(context, c, config.Epsilon));
            if (!config.TieEmbeddings)
            {
                _head = RegisterModule("lm_head", new Linear(context, c, config.VocabularySize, bias: false, InitStd));
            }
            NameParameters();
            Initialization.Initialize(NamedParameters(), seed);
            Dropout.SeedAll(this, seed);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The configuration.</summary>
    public TransformerConfig Config { get; }

    /// <summary>The token embedding, [V, C].</summary>
    public Embedding TokenEmbedding { get; }

    /// <summary>The positional encoding (learned or sinusoidal).</summary>
    public PositionalEncoding Position { get; }

    /// <summary>The dropout on the embeddings.</summary>
    public Dropout EmbeddingDropout { get; }

    /// <summary>The blocks.</summary>
    public ModuleList<TransformerBlock> Blocks { get; }

    /// <summary>The final LayerNorm.</summary>
    public LayerNorm FinalNorm { get; }

    /// <summary>The output projection's weight, [V, C]: the token embedding's when tied.</summary>
    public Parameter OutputWeight => _head?.Weight ?? TokenEmbedding.Weight;

    /// <inheritdoc />
    Module ILanguageModel.Module => this;

    /// <inheritdoc />
    public int VocabularySize => Config.VocabularySize;

    /// <inheritdoc />
    public int MaxSequenceLength => Config.MaxSequenceLength;

    /// <summary>The hidden states after the final LayerNorm. Records on the current <see cref="GradientTape"/>.</summary>
    /// <param name="ids">Token ids, [B, T] i32 in [0, V), T at most <see cref="MaxSequenceLength"/>.</param>
    /// <returns>[B, T, C]. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="ids"/> is not [B, T] i32.</exception>
    /// <exception cref="ArgumentOutOfRangeException">T exceeds <see cref="MaxSequenceLength"/>.</exception>
    /// <exception cref="NativeEngineException">An id is out of range.</exception>
    public Variable Forward(Tensor ids)
    {
        var (_, tokens) = LanguageModelChecks.Ids(ids, nameof(ids));
        using var scope = new ForwardScope();
        var x = EmbeddingDropout.Forward(Fn.Add(TokenEmbedding.Forward(ids), Position.Forward(0, tokens)));
        Variable? residual = null;
        foreach (var block in Blocks)
        {
            (x, residual) = block.Forward(x, residual);
        }
        return scope.Keep(FinalNorm.Forward(x, residual).Output);
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentNullException"><paramref name="batch"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The batch is longer than <see cref="MaxSequenceLength"/>, or
    /// sampled options ask for fewer than 1 or more than V samples.</exception>
    public Variable Loss(TokenBatch batch, LossOptions options)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using var scope = new ForwardScope();
        var ids = Tensor.FromArray<int>(Context, batch.Inputs, batch.BatchSize, batch.SequenceLength);
        var targets = Tensor.FromArray<int>(Context, batch.Targets, batch.BatchSize, batch.SequenceLength);
        return scope.Keep(Loss(ids, targets, batch.TargetCount, options));
    }

    /// <summary>The mean loss over the non-ignored targets, a scalar. Records on the current
    /// <see cref="GradientTape"/>.</summary>
    /// <param name="ids">Token ids, [B, T] i32.</param>
    /// <param name="targets">The next token of each position, [B, T] i32; -1 ignores a position.</param>
    /// <param name="targetCount">The number of non-negative targets (the mean's denominator).</param>
    /// <param name="options">Full or sampled softmax.</param>
    /// <returns>The loss. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">See <see cref="Loss(TokenBatch, LossOptions)"/>.</exception>
    public Variable Loss(Tensor ids, Tensor targets, long targetCount, LossOptions options)
    {
        ArgumentNullException.ThrowIfNull(targets);
        LanguageModelChecks.Options(options, VocabularySize);
        using var scope = new ForwardScope();
        var hidden = Forward(ids);
        var loss = options.Kind == LossKind.Full
            ? Fn.CrossEntropyLoss(hidden, OutputWeight, null, targets, targetCount)
            : Fn.SampledSoftmaxLoss(hidden, OutputWeight, null, targets, options.Samples, options.Seed, targetCount);
        return scope.Keep(loss);
    }

    /// <summary>The mean full cross-entropy of a batch, without recording (evaluation).</summary>
    /// <param name="batch">The batch.</param>
    /// <returns>The loss (0 when no target is trained).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="batch"/> is null.</exception>
    public float EvaluateLoss(TokenBatch batch)
    {
        using var noGrad = GradientTape.NoGrad();
        using var scope = new TensorScope();
        return Loss(batch, LossOptions.Full).Item();
    }

    /// <summary>The logits of every position, without recording.</summary>
    /// <param name="ids">Token ids, [B, T] i32.</param>
    /// <returns>[B, T, V]. Ownership: the current <see cref="TensorScope"/>, or the caller.</returns>
    /// <exception cref="ArgumentException">See <see cref="Forward"/>.</exception>
    public Tensor Logits(Tensor ids)
    {
        using var noGrad = GradientTape.NoGrad();
        using var scope = new ForwardScope();
        return scope.Keep(Ops.MatMul(Forward(ids).Value, OutputWeight.Value, transposeB: true));
    }

    /// <summary>The logits of the last position of each sequence, without recording.</summary>
    /// <param name="ids">Token ids, [B, T] i32.</param>
    /// <returns>[B, V]. Ownership: the current <see cref="TensorScope"/>, or the caller.</returns>
    /// <exception cref="ArgumentException">See <see cref="Forward"/>.</exception>
    public Tensor LastLogits(Tensor ids)
    {
        using var noGrad = GradientTape.NoGrad();
        using var scope = new ForwardScope();
        return scope.Keep(LanguageModelChecks.LastPositionLogits(Forward(ids).Value, OutputWeight.Value));
    }

    /// <summary>The attention probabilities of one head of one layer over a single sequence, for inspection (an
    /// attention heatmap): the causal softmax of the scaled query-key products that the layer's attention kernel
    /// uses, recomputed on the host from the layer's fused query/key/value projection (nothing recorded).</summary>
    /// <param name="ids">The sequence, 1 to <see cref="MaxSequenceLength"/> token ids.</param>
    /// <param name="layer">The block, 0 to Layers - 1.</param>
    /// <param name="head">The query head, 0 to Heads - 1 (its key head is shared under grouped-query attention).</param>
    /// <returns>[T, T] row-major: row i holds query i's weights over keys 0..T-1 (0 above the diagonal).</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public float[] AttentionWeights(ReadOnlySpan<int> ids, int layer, int head)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ids.Length, 1, nameof(ids));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ids.Length, MaxSequenceLength, nameof(ids));
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Config.Layers);
        ArgumentOutOfRangeException.ThrowIfNegative(head);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(head, Config.Heads);
        var t = ids.Length;
        float[] qkv;
        using (GradientTape.NoGrad())
        using (var scope = new TensorScope())
        {
            var tokens = Tensor.FromArray(Context, ids, 1, t);
            var x = EmbeddingDropout.Forward(Fn.Add(TokenEmbedding.Forward(tokens), Position.Forward(0, t)));
            Variable? residual = null;
            for (var i = 0; i < layer; i++)
            {
                (x, residual) = Blocks[i].Forward(x, residual);
            }
            var block = Blocks[layer];
            var normalized = block.Ln1.Forward(x, residual).Output;
            qkv = block.Attention.Qkv!.Forward(normalized).Value.ToArray<float>();
        }
        var d = Config.HeadDimension;
        var width = qkv.Length / t;
        var kvHead = head / (Config.Heads / Config.KvHeads);
        var queryOffset = head * d;
        var keyOffset = Config.Heads * d + kvHead * d;
        var scale = 1.0 / Math.Sqrt(d);
        var weights = new float[t * t];
        var row = new double[t];
        for (var i = 0; i < t; i++)
        {
            var max = double.NegativeInfinity;
            for (var j = 0; j <= i; j++)
            {
                double dot = 0;
                for (var c = 0; c < d; c++)
                {
                    dot += (double)qkv[i * width + queryOffset + c] * qkv[j * width + keyOffset + c];
                }
                row[j] = dot * scale;
                max = Math.Max(max, row[j]);
            }
            double sum = 0;
            for (var j = 0; j <= i; j++)
            {
                row[j] = Math.Exp(row[j] - max);
                sum += row[j];
            }
            for (var j = 0; j <= i; j++)
            {
                weights[i * t + j] = (float)(row[j] / sum);
            }
        }
        return weights;
    }

    /// <inheritdoc />
    public KeyValueCache CreateCache(int batch, int maxLength)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxLength, MaxSequenceLength);
        return new KeyValueCache(Context, Config.Layers, batch, maxLength, Config.KvHeads, Config.HeadDimension);
    }

    /// <inheritdoc />
    /// <remarks>Put the model in evaluation mode first (<see cref="Module.Eval"/>) if it has dropout.</remarks>
    public Tensor NextTokenLogits(Tensor ids, KeyValueCache cache)
    {
        var (_, tokens) = LanguageModelChecks.CacheIds(ids, cache, Config);
        using var noGrad = GradientTape.NoGrad();
        using var scope = new ForwardScope();
        var x = EmbeddingDropout.Forward(Fn.Add(TokenEmbedding.Forward(ids), Position.Forward(cache.Length, tokens)));
        Variable? residual = null;
        for (var i = 0; i < Blocks.Count; i++)
        {
            (x, residual) = Blocks[i].Forward(x, residual, cache, i);
        }
        var hidden = FinalNorm.Forward(x, residual).Output.Value;
        cache.Advance(tokens);
        return scope.Keep(LanguageModelChecks.LastPositionLogits(hidden, OutputWeight.Value));
    }

    /// <summary>Adds the weights to <paramref name="contents"/> (by reference: keep the model alive and unchanged
    /// until it is saved) and describes the model in its configuration (<see cref="ModelCheckpoint"/>).</summary>
    /// <param name="contents">The checkpoint to fill.</param>
    /// <exception cref="ArgumentNullException"><paramref name="contents"/> is null.</exception>
    public void WriteCheckpoint(CheckpointContents contents)
    {
        ArgumentNullException.ThrowIfNull(contents);
        ModelWeights.AddTo(contents.Model, this);
        ModelCheckpoint.Describe(contents.Config, Architecture, Config);
    }

    /// <summary>Rebuilds a model from a checkpoint written with <see cref="WriteCheckpoint"/>.</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <returns>The model, in training mode. Ownership: the caller owns it and disposes it.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="CheckpointException">The checkpoint holds another architecture, an invalid configuration,
    /// or weights that do not match it.</exception>
    public static DecoderOnlyTransformer FromCheckpoint(Context context, LoadedCheckpoint checkpoint)
    {
        var model = new DecoderOnlyTransformer(context, ModelCheckpoint.ReadConfig(checkpoint, Architecture));
        try
        {
            ModelWeights.Load(model, checkpoint.Model);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    internal static PositionalEncoding CreatePositionalEncoding(Context context, TransformerConfig config) =>
        config.PositionalEncoding == PositionalEncodingKind.Sinusoidal
            ? new SinusoidalPositionalEncoding(context, config.MaxSequenceLength, config.ModelDimension)
            : new LearnedPositionalEmbedding(context, config.MaxSequenceLength, config.ModelDimension, InitStd);
}
