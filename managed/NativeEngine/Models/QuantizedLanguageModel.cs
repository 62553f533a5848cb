using NativeEngine.Checkpoints;
using NativeEngine.Data;
using NativeEngine.Inference;
using NativeEngine.Modules;

namespace NativeEngine.Models;

/// <summary>
/// Int8 inference for a trained <see cref="DecoderOnlyTransformer"/>: the weights of every linear layer of the
/// blocks (<c>attention.qkv</c>, <c>attention.proj</c>, <c>mlp.fc</c>, <c>mlp.proj</c>) are quantized per output
/// channel (symmetric absmax, <see cref="Ops.Quantize"/>); at run time each of those layers quantizes its input
/// per row and runs the exact int8 GEMM with the dequantization and the bias fused
/// (<see cref="Ops.LinearInt8(Tensor, Tensor, Tensor, Tensor?)"/>). Embeddings, LayerNorms, attention and the
/// output projection stay f32.
/// </summary>
/// <remarks>
/// <para>Tensors (and checkpoint entries) keep the f32 model's names; a quantized weight <c>X.weight</c> is I8
/// [out, in] with its scales <c>X.weight_scale</c> F32 [out] beside it (<see cref="ScaleSuffix"/>).</para>
/// <para>The forward pass is the f32 model's (pre-LN blocks with residual adds fused into the next LayerNorm,
/// causal attention, GELU MLPs), in evaluation mode (no dropout), recording nothing.</para>
/// <para>Ownership: the model owns its tensors; dispose it. Threading: one thread at a time.</para>
/// </remarks>
public sealed class QuantizedLanguageModel : IAutoregressiveModel, IDisposable
{
    /// <summary>The architecture name of this class in checkpoints (<see cref="ModelCheckpoint"/>).</summary>
    public const string Architecture = "decoder-only-int8";

    /// <summary>Appended to a quantized weight's name to name its scales.</summary>
    public const string ScaleSuffix = "_scale";

    private readonly Dictionary<string, Tensor> _tensors;
    private readonly Tensor? _sinusoidal;
    private bool _disposed;

    private QuantizedLanguageModel(Context context, TransformerConfig config, Dictionary<string, Tensor> tensors)
    {
        Context = context;
        Config = config;
        _tensors = tensors;
        if (config.PositionalEncoding == PositionalEncodingKind.Sinusoidal)
        {
            _sinusoidal = Tensor.FromArray<float>(context,
                SinusoidalPositionalEncoding.ComputeTable(config.MaxSequenceLength, config.ModelDimension),
                config.MaxSequenceLength, config.ModelDimension).MoveTo(null);
        }
    }

    /// <inheritdoc />
    public Context Context { get; }

    /// <summary>The configuration of the quantized model.</summary>
    public TransformerConfig Config { get; }

    /// <inheritdoc />
    public int VocabularySize => Config.VocabularySize;

    /// <inheritdoc />
    public int MaxSequenceLength => Config.MaxSequenceLength;

    /// <summary>Every tensor by name: f32 parameters, I8 weights and their F32 scales (owned by the model).</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors => _tensors;

    /// <summary>The names and shapes of the tensors of a quantized model of <paramref name="config"/>, in
    /// checkpoint order.</summary>
    /// <param name="config">A decoder-only configuration.</param>
    /// <returns>(name, dtype, shape) per tensor.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    public static IReadOnlyList<(string Name, Dtype Dtype, long[] Shape)> Layout(TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long v = config.VocabularySize, c = config.ModelDimension, m = config.MlpDimension;
        var qkv = c + 2L * config.KvHeads * config.HeadDimension;
        var layout = new List<(string, Dtype, long[])> { ("token_embedding.weight", Dtype.F32, [v, c]) };
        if (config.PositionalEncoding == PositionalEncodingKind.Learned)
        {
            layout.Add(("position_embedding.weight", Dtype.F32, [config.MaxSequenceLength, c]));
        }
        void Norm(string name)
        {
            layout.Add(($"{name}.weight", Dtype.F32, [c]));
            layout.Add(($"{name}.bias", Dtype.F32, [c]));
        }
        void Linear(string name, long outFeatures, long inFeatures)
        {
            layout.Add(($"{name}.weight", Dtype.I8, [outFeatures, inFeatures]));
            layout.Add(($"{name}.weight{ScaleSuffix}", Dtype.F32, [outFeatures]));
            layout.Add(($"{name}.bias", Dtype.F32, [outFeatures]));
        }
        for (var i = 0; i < config.Layers; i++)
        {
            var block = $"blocks.{i}";
            Norm($"{block}.ln1");
            Linear($"{block}.attention.qkv", qkv, c);
            Linear($"{block}.attention.proj", c, c);
            Norm($"{block}.ln2");
            Linear($"{block}.mlp.fc", m, c);
            Linear($"{block}.mlp.proj", c, m);
        }
        Norm("ln_f");
        if (!config.TieEmbeddings)
        {
            layout.Add(("lm_head.weight", Dtype.F32, [v, c]));
        }
        return layout;
    }

    /// <summary>Quantizes a trained model. The source is left unchanged and may be disposed afterwards.</summary>
    /// <param name="model">The f32 model.</param>
    /// <returns>The quantized model, on the source's context. Ownership: the caller owns it and disposes it.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="model"/> is null.</exception>
    public static QuantizedLanguageModel Quantize(DecoderOnlyTransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var parameters = model.NamedParameters().ToDictionary(entry => entry.Key, entry => entry.Value.Value, StringComparer.Ordinal);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, dtype, _) in Layout(model.Config))
            {
                if (name.EndsWith(ScaleSuffix, StringComparison.Ordinal))
                {
                    continue;
                }
                var source = parameters[name];
                if (dtype == Dtype.I8)
                {
                    var (q, scales) = Ops.Quantize(source);
                    tensors.Add(name, q.MoveTo(null));
                    tensors.Add(name + ScaleSuffix, scales.MoveTo(null));
                }
                else
                {
                    tensors.Add(name, source.Clone().MoveTo(null));
                }
            }
            return new QuantizedLanguageModel(model.Context, model.Config, tensors);
        }
        catch
        {
            DisposeAll(tensors);
            throw;
        }
    }

    /// <summary>Adds every tensor to <paramref name="contents"/> (by reference: keep the model alive until it is
    /// saved; quantized weights as I8, scales as F32) and describes the model in its configuration.</summary>
    /// <param name="contents">The checkpoint to fill.</param>
    /// <exception cref="ArgumentNullException"><paramref name="contents"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public void WriteCheckpoint(CheckpointContents contents)
    {
        ArgumentNullException.ThrowIfNull(contents);
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (var (name, _, _) in Layout(Config))
        {
            contents.Model.Add(name, _tensors[name]);
        }
        ModelCheckpoint.Describe(contents.Config, Architecture, Config);
    }

    /// <summary>Loads a quantized model from a checkpoint written with <see cref="WriteCheckpoint"/>.</summary>
    /// <param name="context">The context of the tensors.</param>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <returns>The model. Ownership: the caller owns it and disposes it.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="CheckpointException">The checkpoint holds another architecture, an invalid configuration,
    /// or tensors that do not match it (missing, unused, of another dtype or shape); nothing is loaded then.</exception>
    public static QuantizedLanguageModel FromCheckpoint(Context context, LoadedCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(context);
        var config = ModelCheckpoint.ReadConfig(checkpoint, Architecture);
        if (config.EncoderLayers != 0)
        {
            throw new CheckpointException(checkpoint.Path, $"the quantized model's configuration has {config.EncoderLayers} encoder layers; expected 0");
        }
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, dtype, shape) in Layout(config))
            {
                tensors.Add(name, Tensor.Create(context, dtype, shape).MoveTo(null));
            }
            checkpoint.Model.ReadInto(tensors);
            return new QuantizedLanguageModel(context, config, tensors);
        }
        catch
        {
            DisposeAll(tensors);
            throw;
        }
    }

    /// <summary>The hidden states after the final LayerNorm.</summary>
    /// <param name="ids">Token ids, [B, T] i32, T at most <see cref="MaxSequenceLength"/>.</param>
    /// <returns>[B, T, C]. Ownership: the current <see cref="TensorScope"/>, or the caller.</returns>
    /// <exception cref="ArgumentException"><paramref name="ids"/> is not [B, T] i32.</exception>
    /// <exception cref="ArgumentOutOfRangeException">T exceeds <see cref="MaxSequenceLength"/>.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public Tensor Forward(Tensor ids)
    {
        var (_, tokens) = LanguageModelChecks.Ids(ids, nameof(ids));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tokens, MaxSequenceLength, nameof(ids));
        return Hidden(ids, null);
    }

    /// <summary>The logits of every position.</summary>
    /// <param name="ids">Token ids, [B, T] i32.</param>
    /// <returns>[B, T, V]. Ownership: the current <see cref="TensorScope"/>, or the caller.</returns>
    /// <exception cref="ArgumentException">See <see cref="Forward"/>.</exception>
    public Tensor Logits(Tensor ids)
    {
        using var scope = new ForwardScope();
        return scope.Keep(Ops.MatMul(Forward(ids), OutputWeight, transposeB: true));
    }

    /// <summary>The mean full cross-entropy of a batch over its non-ignored targets.</summary>
    /// <param name="batch">The batch.</param>
    /// <returns>The loss (0 when no target is trained).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="batch"/> is null.</exception>
    public float EvaluateLoss(TokenBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using var scope = new TensorScope();
        var ids = Tensor.FromArray<int>(Context, batch.Inputs, batch.BatchSize, batch.SequenceLength);
        var targets = Tensor.FromArray<int>(Context, batch.Targets);
        var hidden = Forward(ids);
        using var rows = hidden.View(hidden.Offset, [hidden.ElementCount / Config.ModelDimension, Config.ModelDimension]);
        var total = 0.0;
        foreach (var loss in Ops.CrossEntropy(rows, OutputWeight, null, targets).ToArray<float>())
        {
            total += loss;
        }
        return batch.TargetCount == 0 ? 0f : (float)(total / batch.TargetCount);
    }

    /// <inheritdoc />
    public KeyValueCache CreateCache(int batch, int maxLength)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxLength, MaxSequenceLength);
        return new KeyValueCache(Context, Config.Layers, batch, maxLength, Config.KvHeads, Config.HeadDimension);
    }

    /// <inheritdoc />
    public Tensor NextTokenLogits(Tensor ids, KeyValueCache cache)
    {
        var (_, tokens) = LanguageModelChecks.CacheIds(ids, cache, Config);
        using var scope = new ForwardScope();
        var hidden = Hidden(ids, cache);
        cache.Advance(tokens);
        return scope.Keep(LanguageModelChecks.LastPositionLogits(hidden, OutputWeight));
    }

    /// <summary>Disposes every tensor. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        DisposeAll(_tensors);
        _sinusoidal?.Dispose();
    }

    private Tensor OutputWeight => Get(Config.TieEmbeddings ? "token_embedding.weight" : "lm_head.weight");

    private Tensor Get(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _tensors[name];
    }

    // The f32 model's forward pass with int8 linears; with a cache, the new tokens attend over it from position
    // cache.Length (the caller advances it).
    private Tensor Hidden(Tensor ids, KeyValueCache? cache)
    {
        using var scope = new ForwardScope();
        var context = Context;
        long batch = ids.Shape[0], tokens = ids.Shape[1], start = cache?.Length ?? 0;
        int c = Config.ModelDimension, heads = Config.Heads, kvHeads = Config.KvHeads, headDim = Config.HeadDimension;
        var x = Ops.Embedding(Get("token_embedding.weight"), ids);
        var table = _sinusoidal ?? Get("position_embedding.weight");
        using (var positions = table.View(table.Offset + start * c, [tokens, c]))
        {
            Ops.Add(context, x, positions, x);
        }
        Tensor? stream = null;
        for (var layer = 0; layer < Config.Layers; layer++)
        {
            var block = $"blocks.{layer}";
            var h = Norm(x, stream, $"{block}.ln1");
            stream ??= x;
            var qkv = Linear(h, $"{block}.attention.qkv");
            var attended = Tensor.Create(context, Dtype.F32, batch, tokens, c);
            using (var q = Autograd.Fn.HeadView(qkv, 0, heads, headDim))
            using (var k = Autograd.Fn.HeadView(qkv, (long)heads * headDim, kvHeads, headDim))
            using (var v = Autograd.Fn.HeadView(qkv, (long)(heads + kvHeads) * headDim, kvHeads, headDim))
            using (var output = attended.View(attended.Offset, [batch, tokens, heads, headDim]))
            {
                if (cache is null)
                {
                    Ops.AttentionForward(context, q, k, v, output, causal: true);
                }
                else
                {
                    using (var kSlot = cache.Slice(cache.Keys(layer), start, tokens))
                    using (var vSlot = cache.Slice(cache.Values(layer), start, tokens))
                    {
                        kSlot.CopyFrom(k);
                        vSlot.CopyFrom(v);
                    }
                    using var keys = cache.Slice(cache.Keys(layer), 0, start + tokens);
                    using var values = cache.Slice(cache.Values(layer), 0, start + tokens);
                    Ops.AttentionForward(context, q, keys, values, output, causal: true);
                }
            }
            var h2 = Norm(Linear(attended, $"{block}.attention.proj"), stream, $"{block}.ln2");
            var hidden = Linear(h2, $"{block}.mlp.fc");
            Ops.GeluForward(context, hidden, hidden);
            x = Linear(hidden, $"{block}.mlp.proj");
        }
        return scope.Keep(Norm(x, stream, "ln_f"));
    }

    // LayerNorm of x + residual; the sum overwrites the residual stream (which it replaces).
    private Tensor Norm(Tensor x, Tensor? residual, string name)
    {
        var y = Tensor.Create(Context, Dtype.F32, [.. x.Shape]);
        Ops.LayerNormForward(Context, x, residual, Get($"{name}.weight"), Get($"{name}.bias"), y, residual, epsilon: Config.Epsilon);
        return y;
    }

    // y = dequant(quant_per_row(x) w^T) + b over the rows of x [B, T, in].
    private Tensor Linear(Tensor x, string name)
    {
        var weight = Get($"{name}.weight");
        long batch = x.Shape[0], tokens = x.Shape[1], outFeatures = weight.Shape[0];
        using var rows = x.View(x.Offset, [batch * tokens, x.Shape[2]]);
        using var y = Ops.LinearInt8(rows, weight, Get($"{name}.weight{ScaleSuffix}"), Get($"{name}.bias"));
        return y.View(y.Offset, [batch, tokens, outFeatures]);
    }

    private static void DisposeAll(Dictionary<string, Tensor> tensors)
    {
        foreach (var tensor in tensors.Values)
        {
            tensor.Dispose();
        }
    }
}
