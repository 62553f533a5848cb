using NativeEngine.Autograd;

namespace NativeEngine.Modules;

/// <summary>
/// Multi-head attention with grouped-query heads: self-attention with one fused QKV projection, or
/// cross-attention with a query projection and a fused key/value projection over an encoder's output; then an
/// output projection and residual dropout.
/// </summary>
/// <remarks>
/// <para>Self-attention: <c>qkv</c> is a Linear [C + 2 Hkv D, C] whose output holds per token the H query
/// heads, then the Hkv key heads, then the Hkv value heads (D = C / H). Attention reads q, k and v as strided
/// views of it and writes their gradients into views of its gradient: no copies
/// (<see cref="Fn.SelfAttention"/>).</para>
/// <para>Cross-attention: <c>q</c> is a Linear [C, C] over the decoder's states and <c>kv</c> a Linear
/// [2 Hkv D, C] over the encoder's output (<see cref="Fn.CrossAttention"/>).</para>
/// <para>Both end with <c>proj</c>, a Linear [C, C] into the residual stream (initialized with the smaller
/// standard deviation of residual projections), and dropout on its output in training mode. Dropout on the
/// attention probabilities is not supported by the fused kernel.</para>
/// </remarks>
public sealed class MultiHeadAttention : Module
{
    /// <summary>Creates the projections (zero-filled until initialized).</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="modelDimension">C, a multiple of <paramref name="heads"/>.</param>
    /// <param name="heads">H, the query heads.</param>
    /// <param name="kvHeads">Hkv, the key/value heads; H is a multiple of it.</param>
    /// <param name="causal">Causal masking (decoder self-attention).</param>
    /// <param name="crossAttention">Cross-attention (a query and a key/value projection) instead of
    /// self-attention (one QKV projection).</param>
    /// <param name="dropout">The residual dropout probability.</param>
    /// <param name="std">The standard deviation of the input projections' initialization.</param>
    /// <param name="outputStd">The standard deviation of the output projection's initialization.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns it and disposes it.</remarks>
    /// <exception cref="ArgumentException">The head counts do not divide the dimensions.</exception>
    public MultiHeadAttention(Context context, int modelDimension, int heads, int kvHeads, bool causal,
        bool crossAttention = false, float dropout = 0f, float std = 0.02f, float outputStd = 0.02f) : base(context)
    {
        if (heads < 1 || kvHeads < 1 || modelDimension % heads != 0 || heads % kvHeads != 0)
        {
            throw new ArgumentException(
                $"The model dimension {modelDimension} must split into {heads} heads, and the {heads} heads into {kvHeads} key/value groups.",
                nameof(heads));
        }
        ModelDimension = modelDimension;
        Heads = heads;
        KvHeads = kvHeads;
        HeadDimension = modelDimension / heads;
        IsCausal = causal;
        IsCrossAttention = crossAttention;
        var kvWidth = 2 * kvHeads * HeadDimension;
        if (crossAttention)
        {
            Query = RegisterModule("q", new Linear(context, modelDimension, modelDimension, std: std));
            KeyValue = RegisterModule("kv", new Linear(context, modelDimension, kvWidth, std: std));
        }
        else
        {
            Qkv = RegisterModule("qkv", new Linear(context, modelDimension, modelDimension + kvWidth, std: std));
        }
        Output = RegisterModule("proj", new Linear(context, modelDimension, modelDimension, std: outputStd));
        ResidualDropout = RegisterModule("dropout", new Dropout(context, dropout));
    }

    /// <summary>C.</summary>
    public int ModelDimension { get; }

    /// <summary>H.</summary>
    public int Heads { get; }

    /// <summary>Hkv.</summary>
    public int KvHeads { get; }

    /// <summary>D = C / H.</summary>
    public int HeadDimension { get; }

    /// <summary>Whether attention is causal.</summary>
    public bool IsCausal { get; }

    /// <summary>Whether this is cross-attention.</summary>
    public bool IsCrossAttention { get; }

    /// <summary>The fused QKV projection of self-attention (null for cross-attention).</summary>
    public Linear? Qkv { get; }

    /// <summary>The query projection of cross-attention (null for self-attention).</summary>
    public Linear? Query { get; }

    /// <summary>The fused key/value projection of cross-attention (null for self-attention).</summary>
    public Linear? KeyValue { get; }

    /// <summary>The output projection.</summary>
    public Linear Output { get; }

    /// <summary>The residual dropout on the output.</summary>
    public Dropout ResidualDropout { get; }

    /// <summary>Self-attention over <paramref name="x"/>.</summary>
    /// <param name="x">The input, [B, T, C].</param>
    /// <param name="keyLengths">Valid tokens per sequence, [B] i32, masking padded keys; or null. Not for causal
    /// attention over right-padded batches (the causal mask is aligned to the end of the valid keys).</param>
    /// <returns>[B, T, C]. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="InvalidOperationException">This is a cross-attention module.</exception>
    public Variable Forward(Variable x, Tensor? keyLengths = null)
    {
        if (Qkv is null)
        {
            throw new InvalidOperationException("This is a cross-attention module: pass the encoder's output (memory).");
        }
        using var scope = new ForwardScope();
        var qkv = Qkv.Forward(x);
        var attended = Fn.SelfAttention(qkv, Heads, KvHeads, IsCausal, keyLengths);
        return scope.Keep(ResidualDropout.Forward(Output.Forward(attended)));
    }

    /// <summary>Cross-attention of <paramref name="x"/> over <paramref name="memory"/>.</summary>
    /// <param name="x">The decoder states, [B, Tq, C].</param>
    /// <param name="memory">The encoder output, [B, Tk, C].</param>
    /// <param name="memoryLengths">Valid source tokens per sequence, [B] i32; or null.</param>
    /// <returns>[B, Tq, C]. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="InvalidOperationException">This is a self-attention module.</exception>
    public Variable Forward(Variable x, Variable memory, Tensor? memoryLengths = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (Query is null || KeyValue is null)
        {
            throw new InvalidOperationException("This is a self-attention module: it takes no memory.");
        }
        using var scope = new ForwardScope();
        var q = Query.Forward(x);
        var kv = KeyValue.Forward(memory);
        var attended = Fn.CrossAttention(q, kv, Heads, KvHeads, memoryLengths, IsCausal);
        return scope.Keep(ResidualDropout.Forward(Output.Forward(attended)));
    }

    /// <summary>Incremental causal self-attention (inference, nothing recorded): appends the keys and values of
    /// the new tokens to layer <paramref name="layer"/> of <paramref name="cache"/> at position
    /// <see cref="KeyValueCache.Length"/> (copies into views of the preallocated cache) and attends the new
    /// queries over the whole cached prefix; the kernel's causal mask, aligned to the end of the keys, lets new
    /// token i see the cache and new tokens up to i. The caller advances the cache once every layer has run.</summary>
    /// <param name="x">The new tokens' states, [B, Tnew, C].</param>
    /// <param name="cache">The cache.</param>
    /// <param name="layer">This module's layer in the cache.</param>
    /// <returns>[B, Tnew, C]. Ownership: the current <see cref="TensorScope"/>, or the caller.</returns>
    /// <exception cref="InvalidOperationException">This is a cross-attention module.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The new tokens do not fit in the cache.</exception>
    public Variable Forward(Variable x, KeyValueCache cache, int layer)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(cache);
        if (Qkv is null)
        {
            throw new InvalidOperationException("A key/value cache serves self-attention only.");
        }
        var shape = x.Shape;
        long start = cache.Length, tokens = shape[1];
        if (start + tokens > cache.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(x), $"{start} cached + {tokens} new tokens exceed the cache's {cache.MaxLength} positions.");
        }
        using var noGrad = GradientTape.NoGrad();
        using var scope = new ForwardScope();
        var context = x.Context;
        var qkv = Qkv.Forward(x).Value;
        using (var k = Fn.HeadView(qkv, Heads * HeadDimension, KvHeads, HeadDimension))
        using (var v = Fn.HeadView(qkv, (Heads + KvHeads) * HeadDimension, KvHeads, HeadDimension))
        using (var kSlot = cache.Slice(cache.Keys(layer), start, tokens))
        using (var vSlot = cache.Slice(cache.Values(layer), start, tokens))
        {
            kSlot.CopyFrom(k);
            vSlot.CopyFrom(v);
        }
        var attended = Tensor.Create(context, Dtype.F32, shape[0], tokens, ModelDimension);
        using (var q = Fn.HeadView(qkv, 0, Heads, HeadDimension))
        using (var keys = cache.Slice(cache.Keys(layer), 0, start + tokens))
        using (var values = cache.Slice(cache.Values(layer), 0, start + tokens))
        using (var output = attended.View(attended.Offset, [shape[0], tokens, Heads, HeadDimension]))
        {
            Ops.AttentionForward(context, q, keys, values, output, causal: true);
        }
        return scope.Keep(Output.Forward(new Variable(attended)));
    }
}

/// <summary>The feed-forward block of a transformer: Linear (C to hidden) – GELU – Linear (hidden to C) –
/// dropout.</summary>
public sealed class Mlp : Module
{
    /// <summary>Creates the two layers (zero-filled until initialized).</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="modelDimension">C.</param>
    /// <param name="hiddenDimension">The hidden width (4 C in GPT-2).</param>
    /// <param name="dropout">The residual dropout probability.</param>
    /// <param name="std">The standard deviation of the first layer's initialization.</param>
    /// <param name="outputStd">The standard deviation of the output layer's initialization.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns it and disposes it.</remarks>
    public Mlp(Context context, int modelDimension, int hiddenDimension, float dropout = 0f, float std = 0.02f,
        float outputStd = 0.02f) : base(context)
    {
        Fc = RegisterModule("fc", new Linear(context, modelDimension, hiddenDimension, std: std));
        Proj = RegisterModule("proj", new Linear(context, hiddenDimension, modelDimension, std: outputStd));
        ResidualDropout = RegisterModule("dropout", new Dropout(context, dropout));
    }

    /// <summary>The first layer, C to hidden.</summary>
    public Linear Fc { get; }

    /// <summary>The output layer, hidden to C.</summary>
    public Linear Proj { get; }

    /// <summary>The residual dropout on the output.</summary>
    public Dropout ResidualDropout { get; }

    /// <summary>Applies the block.</summary>
    /// <param name="x">[..., C].</param>
    /// <returns>[..., C]. Ownership: see <see cref="Fn"/>.</returns>
    public Variable Forward(Variable x)
    {
        using var scope = new ForwardScope();
        return scope.Keep(ResidualDropout.Forward(Proj.Forward(Fn.Gelu(Fc.Forward(x)))));
    }

    /// <summary>Applies the block without its dropout, whatever the mode: for incremental decoding, which is
    /// inference (as <see cref="MultiHeadAttention.Forward(Variable, KeyValueCache, int)"/>).</summary>
    /// <param name="x">[..., C].</param>
    /// <returns>[..., C]. Ownership: see <see cref="Fn"/>.</returns>
    internal Variable ForwardWithoutDropout(Variable x)
    {
        using var scope = new ForwardScope();
        return scope.Keep(Proj.Forward(Fn.Gelu(Fc.Forward(x))));
    }
}
