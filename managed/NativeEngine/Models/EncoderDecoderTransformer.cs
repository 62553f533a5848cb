using NativeEngine.Autograd;
using NativeEngine.Checkpoints;
using NativeEngine.Inference;
using NativeEngine.Modules;

namespace NativeEngine.Models;

/// <summary>
/// The encoder-decoder transformer of "Attention Is All You Need", with pre-LN blocks: a non-causal encoder over
/// right-padded source sequences (their lengths mask the padding), and a decoder of <see cref="DecoderBlock"/>s
/// (causal self-attention, cross-attention over the encoder's output, MLP), over one shared vocabulary.
/// </summary>
/// <remarks>
/// <para>Parameter names: <c>token_embedding.weight</c> (shared by source, target and, when tied, the output),
/// <c>position_embedding.weight</c> (learned positions only, shared by both sides), <c>encoder_blocks.{i}.*</c>
/// (<see cref="TransformerBlock"/>), <c>encoder_ln.*</c>, <c>decoder_blocks.{i}.*</c> (<see cref="DecoderBlock"/>),
/// <c>decoder_ln.*</c>, and <c>lm_head.weight</c> when the embeddings are not tied.</para>
/// <para>Initialization as <see cref="DecoderOnlyTransformer"/>: N(0, 0.02) weights, zero biases, unit LayerNorm
/// weights, residual output projections N(0, 0.02 / sqrt(n)) with n the residual branches of the stack (2 per
/// encoder block, 3 per decoder block).</para>
/// <para>Target sequences are right-padded too: their padding comes after every real token, so the causal mask
/// keeps it out of the real positions, and its targets are ignored (-1).</para>
/// <para>Ownership: the model owns its parameters; dispose it.</para>
/// </remarks>
public sealed class EncoderDecoderTransformer : Module
{
    /// <summary>The architecture name of this class in checkpoints (<see cref="ModelCheckpoint"/>).</summary>
    public const string Architecture = "encoder-decoder";

    private const float InitStd = DecoderOnlyTransformer.InitStd;

    private readonly Linear? _head;

    /// <summary>Creates and initializes a model.</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="config">The configuration; validated, with <see cref="TransformerConfig.EncoderLayers"/> &gt;= 1
    /// (and <see cref="TransformerConfig.Layers"/> the decoder blocks).</param>
    /// <param name="seed">The seed of the initialization and of the dropout masks.</param>
    /// <remarks>Ownership: the caller owns the model and disposes it.</remarks>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The configuration is invalid or has no encoder layers.</exception>
    public EncoderDecoderTransformer(Context context, TransformerConfig config, ulong seed = 0) : base(context)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (config.EncoderLayers < 1)
        {
            throw new ArgumentException(
                $"TransformerConfig.EncoderLayers is {config.EncoderLayers}; an encoder-decoder model needs >= 1.", nameof(config));
        }
        Config = config;
        try
        {
            var c = config.ModelDimension;
            TokenEmbedding = RegisterModule("token_embedding", new Embedding(context, config.VocabularySize, c, InitStd));
            Position = RegisterModule("position_embedding", DecoderOnlyTransformer.CreatePositionalEncoding(context, config));
            EmbeddingDropout = RegisterModule("dropout", new Dropout(context, config.Dropout));
            var encoderStd = InitStd / MathF.Sqrt(2f * config.EncoderLayers);
            EncoderBlocks = RegisterModule("encoder_blocks", new ModuleList<TransformerBlock>(context,
                Enumerable.Range(0, config.EncoderLayers).Select(_ => new TransformerBlock(context, c, config.Heads, config.KvHeads,
                    config.MlpDimension, causal: false, config.Dropout, config.Epsilon, InitStd, encoderStd))));
            EncoderNorm = RegisterModule("encoder_ln", new LayerNorm(context, c, config.Epsilon));
            var decoderStd = InitStd / MathF.Sqrt(3f * config.Layers);
            DecoderBlocks = RegisterModule("decoder_blocks", new ModuleList<DecoderBlock>(context,
                Enumerable.Range(0, config.Layers).Select(_ => new DecoderBlock(context, c, config.Heads, config.KvHeads,
                    config.MlpDimension, config.Dropout, config.Epsilon, InitStd, decoderStd))));
            DecoderNorm = RegisterModule("decoder_ln", new LayerNorm(context, c, config.Epsilon));
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

    /// <summary>The shared token embedding, [V, C].</summary>
    public Embedding TokenEmbedding { get; }

    /// <summary>The positional encoding, shared by the encoder and the decoder.</summary>
    public PositionalEncoding Position { get; }

    /// <summary>The dropout on the embeddings.</summary>
    public Dropout EmbeddingDropout { get; }

    /// <summary>The encoder blocks (non-causal).</summary>
    public ModuleList<TransformerBlock> EncoderBlocks { get; }

    /// <summary>The encoder's final LayerNorm.</summary>
    public LayerNorm EncoderNorm { get; }

    /// <summary>The decoder blocks.</summary>
    public ModuleList<DecoderBlock> DecoderBlocks { get; }

    /// <summary>The decoder's final LayerNorm.</summary>
    public LayerNorm DecoderNorm { get; }

    /// <summary>The output projection's weight, [V, C]: the token embedding's when tied.</summary>
    public Parameter OutputWeight => _head?.Weight ?? TokenEmbedding.Weight;

    /// <summary>Encodes source sequences. Records on the current <see cref="GradientTape"/>.</summary>
    /// <param name="sourceIds">Source ids, [B, Ts] i32, right-padded with any valid id.</param>
    /// <param name="sourceLengths">The real tokens per sequence, [B] i32 in 1..Ts; or null when none is padded.</param>
    /// <returns>The encoder's output (the memory), [B, Ts, C]; its padded positions are never attended to.
    /// Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="sourceIds"/> is not [B, Ts] i32.</exception>
    /// <exception cref="ArgumentOutOfRangeException">Ts exceeds the maximum sequence length.</exception>
    public Variable Encode(Tensor sourceIds, Tensor? sourceLengths)
    {
        using var scope = new ForwardScope();
        var x = Embed(sourceIds);
        Variable? residual = null;
        foreach (var block in EncoderBlocks)
        {
            (x, residual) = block.Forward(x, residual, sourceLengths);
        }
        return scope.Keep(EncoderNorm.Forward(x, residual).Output);
    }

    /// <summary>The decoder's hidden states after its final LayerNorm. Records on the current
    /// <see cref="GradientTape"/>.</summary>
    /// <param name="targetInputs">Target inputs (a start token, then the target shifted right), [B, Tt] i32.</param>
    /// <param name="memory">The encoder's output, [B, Ts, C].</param>
    /// <param name="sourceLengths">The real source tokens per sequence, [B] i32; or null.</param>
    /// <returns>[B, Tt, C]. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="targetInputs"/> is not [B, Tt] i32.</exception>
    public Variable Decode(Tensor targetInputs, Variable memory, Tensor? sourceLengths)
    {
        ArgumentNullException.ThrowIfNull(memory);
        using var scope = new ForwardScope();
        var x = Embed(targetInputs);
        Variable? residual = null;
        foreach (var block in DecoderBlocks)
        {
            (x, residual) = block.Forward(x, residual, memory, sourceLengths);
        }
        return scope.Keep(DecoderNorm.Forward(x, residual).Output);
    }

    /// <summary>The mean loss of predicting the targets, a scalar. Records on the current
    /// <see cref="GradientTape"/>.</summary>
    /// <param name="sourceIds">Source ids, [B, Ts] i32.</param>
    /// <param name="sourceLengths">The real source tokens per sequence, [B] i32; or null.</param>
    /// <param name="targetInputs">Target inputs, [B, Tt] i32.</param>
    /// <param name="targets">The token that follows each target input, [B, Tt] i32; -1 ignores a position.</param>
    /// <param name="targetCount">The number of non-negative targets (the mean's denominator).</param>
    /// <param name="options">Full or sampled softmax.</param>
    /// <returns>The loss. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentNullException">A required argument is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A sequence is too long, or the sampled options are out of range.</exception>
    public Variable Loss(Tensor sourceIds, Tensor? sourceLengths, Tensor targetInputs, Tensor targets, long targetCount,
        LossOptions options = default)
    {
        ArgumentNullException.ThrowIfNull(targets);
        LanguageModelChecks.Options(options, Config.VocabularySize);
        using var scope = new ForwardScope();
        var hidden = Decode(targetInputs, Encode(sourceIds, sourceLengths), sourceLengths);
        var loss = options.Kind == LossKind.Full
            ? Fn.CrossEntropyLoss(hidden, OutputWeight, null, targets, targetCount)
            : Fn.SampledSoftmaxLoss(hidden, OutputWeight, null, targets, options.Samples, options.Seed, targetCount);
        return scope.Keep(loss);
    }

    /// <summary>Greedy decoding, without recording: the source is encoded once, then each step runs the decoder
    /// over the start token and the tokens so far and appends the arg max of the last position's logits
    /// (<see cref="TokenSampler.Argmax"/>), until every sequence has produced <paramref name="endToken"/> or
    /// <paramref name="maxLength"/> tokens.</summary>
    /// <param name="sourceIds">Source ids, [B, Ts] i32.</param>
    /// <param name="sourceLengths">The real source tokens per sequence, [B] i32; or null.</param>
    /// <param name="startToken">The first target input.</param>
    /// <param name="endToken">The token that ends a sequence (included in its result).</param>
    /// <param name="maxLength">The most tokens per sequence, 1 to the maximum sequence length.</param>
    /// <returns>The tokens of each sequence.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A token or <paramref name="maxLength"/> is out of range.</exception>
    public int[][] GreedyDecode(Tensor sourceIds, Tensor? sourceLengths, int startToken, int endToken, int maxLength)
    {
        var (batch, _) = LanguageModelChecks.Ids(sourceIds, nameof(sourceIds));
        ArgumentOutOfRangeException.ThrowIfNegative(startToken);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(startToken, Config.VocabularySize);
        ArgumentOutOfRangeException.ThrowIfNegative(endToken);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(endToken, Config.VocabularySize);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxLength, Config.MaxSequenceLength);
        using var noGrad = GradientTape.NoGrad();
        using var scope = new TensorScope();
        var memory = Encode(sourceIds, sourceLengths);
        var rows = (int)batch;
        var results = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToArray();
        var done = new bool[rows];
        var inputs = new List<int>[rows];
        for (var row = 0; row < rows; row++)
        {
            inputs[row] = [startToken];
        }
        for (var step = 0; step < maxLength && !done.All(d => d); step++)
        {
            using var stepScope = new TensorScope();
            var ids = Tensor.FromArray<int>(Context, inputs.SelectMany(row => row).ToArray(), rows, step + 1);
            var hidden = Decode(ids, memory, sourceLengths).Value;
            var logits = LanguageModelChecks.LastPositionLogits(hidden, OutputWeight.Value).ToArray<float>();
            for (var row = 0; row < rows; row++)
            {
                var token = TokenSampler.Argmax(logits.AsSpan(row * Config.VocabularySize, Config.VocabularySize));
                inputs[row].Add(token);
                if (!done[row])
                {
                    results[row].Add(token);
                    done[row] = token == endToken;
                }
            }
        }
        return [.. results.Select(tokens => tokens.ToArray())];
    }

    /// <summary>Adds the weights to <paramref name="contents"/> (by reference) and describes the model in its
    /// configuration (<see cref="ModelCheckpoint"/>).</summary>
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
    public static EncoderDecoderTransformer FromCheckpoint(Context context, LoadedCheckpoint checkpoint)
    {
        var model = new EncoderDecoderTransformer(context, ModelCheckpoint.ReadConfig(checkpoint, Architecture));
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

    private Variable Embed(Tensor ids)
    {
        var (_, tokens) = LanguageModelChecks.Ids(ids, nameof(ids));
        return EmbeddingDropout.Forward(Fn.Add(TokenEmbedding.Forward(ids), Position.Forward(0, tokens)));
    }
}
