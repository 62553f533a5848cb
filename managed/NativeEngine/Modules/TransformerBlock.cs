using NativeEngine.Autograd;

namespace NativeEngine.Modules;

/// <summary>The output of a transformer block whose last residual add is left to the next LayerNorm:
/// the block's output is <c>Branch + Residual</c>.</summary>
/// <param name="Branch">The output of the block's last branch (the MLP).</param>
/// <param name="Residual">The residual stream before that branch.</param>
public readonly record struct BlockOutput(Variable Branch, Variable Residual);

/// <summary>
/// A pre-LN transformer block (GPT-2): <c>h = x + Attention(LN1(x))</c>, <c>out = h + Mlp(LN2(h))</c>, with every
/// residual add fused into the LayerNorm that follows it.
/// </summary>
/// <remarks>
/// <para>Fusion: <see cref="Forward(Variable, Variable?, Tensor?)"/> takes the previous block's pending
/// <see cref="BlockOutput"/> (branch and residual) and computes <c>LN1(branch + residual)</c> in one kernel that
/// also writes the sum, the new residual stream; the attention's residual add is fused into LN2 likewise, and
/// the MLP's is left to the next block (or the model's final LayerNorm). <see cref="Forward(Variable, Tensor?)"/>
/// is the plain form, with an explicit final add.</para>
/// <para>Names: <c>ln1</c>, <c>attention</c> (<see cref="MultiHeadAttention"/>), <c>ln2</c>, <c>mlp</c>.</para>
/// </remarks>
public sealed class TransformerBlock : Module
{
    /// <summary>Creates a block (parameters zero-filled until initialized).</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="modelDimension">C.</param>
    /// <param name="heads">H.</param>
    /// <param name="kvHeads">Hkv.</param>
    /// <param name="mlpDimension">The MLP's hidden width.</param>
    /// <param name="causal">Causal self-attention (decoder) or not (encoder).</param>
    /// <param name="dropout">The residual dropout probability.</param>
    /// <param name="epsilon">The LayerNorms' epsilon.</param>
    /// <param name="std">The standard deviation of the input projections' initialization.</param>
    /// <param name="residualStd">The standard deviation of the residual output projections' initialization.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns it and disposes it.</remarks>
    public TransformerBlock(Context context, int modelDimension, int heads, int kvHeads, int mlpDimension, bool causal,
        float dropout = 0f, float epsilon = Ops.DefaultEpsilon, float std = 0.02f, float residualStd = 0.02f) : base(context)
    {
        Ln1 = RegisterModule("ln1", new LayerNorm(context, modelDimension, epsilon));
        Attention = RegisterModule("attention",
            new MultiHeadAttention(context, modelDimension, heads, kvHeads, causal, false, dropout, std, residualStd));
        Ln2 = RegisterModule("ln2", new LayerNorm(context, modelDimension, epsilon));
        Mlp = RegisterModule("mlp", new Mlp(context, modelDimension, mlpDimension, dropout, std, residualStd));
    }

    /// <summary>The LayerNorm before attention.</summary>
    public LayerNorm Ln1 { get; }

    /// <summary>The self-attention.</summary>
    public MultiHeadAttention Attention { get; }

    /// <summary>The LayerNorm before the MLP.</summary>
    public LayerNorm Ln2 { get; }

    /// <summary>The MLP.</summary>
    public Mlp Mlp { get; }

    /// <summary>Applies the block to <c>x + residual</c>, leaving its final residual add pending.</summary>
    /// <param name="x">The previous branch's output (or the embeddings), [B, T, C].</param>
    /// <param name="residual">The residual stream to add to <paramref name="x"/> (fused into LN1), or null.</param>
    /// <param name="keyLengths">Valid tokens per sequence, [B] i32, masking padded keys; or null.</param>
    /// <returns>The MLP's output and the residual stream it is to be added to. Ownership: see <see cref="Fn"/>.</returns>
    public BlockOutput Forward(Variable x, Variable? residual, Tensor? keyLengths = null)
    {
        using var scope = new ForwardScope();
        var (h, stream) = Ln1.Forward(x, residual);
        var attended = Attention.Forward(h, keyLengths);
        var (h2, stream2) = Ln2.Forward(attended, stream);
        var branch = Mlp.Forward(h2);
        return new BlockOutput(scope.Keep(branch), scope.Keep(stream2));
    }

    /// <summary>Applies the block: <c>h = x + Attention(LN1(x))</c>, returns <c>h + Mlp(LN2(h))</c>.</summary>
    /// <param name="x">The input, [B, T, C].</param>
    /// <param name="keyLengths">Valid tokens per sequence, [B] i32; or null.</param>
    /// <returns>[B, T, C]. Ownership: see <see cref="Fn"/>.</returns>
    public Variable Forward(Variable x, Tensor? keyLengths = null)
    {
        using var scope = new ForwardScope();
        var (branch, residual) = Forward(x, null, keyLengths);
        return scope.Keep(Fn.Add(branch, residual));
    }

    /// <summary>Incremental decoding (inference): as <see cref="Forward(Variable, Variable?, Tensor?)"/> for the new
    /// tokens, attending over layer <paramref name="layer"/> of <paramref name="cache"/>, without dropout in either
    /// mode and without recording.</summary>
    /// <param name="x">The previous branch's output for the new tokens, [B, Tnew, C].</param>
    /// <param name="residual">The residual stream, or null.</param>
    /// <param name="cache">The key/value cache.</param>
    /// <param name="layer">This block's layer in the cache.</param>
    /// <returns>The pending output. Ownership: the current <see cref="TensorScope"/>, or the caller.</returns>
    public BlockOutput Forward(Variable x, Variable? residual, KeyValueCache cache, int layer)
    {
        using var noGrad = GradientTape.NoGrad();
        using var scope = new ForwardScope();
        var (h, stream) = Ln1.Forward(x, residual);
        var attended = Attention.Forward(h, cache, layer);
        var (h2, stream2) = Ln2.Forward(attended, stream);
        var branch = Mlp.ForwardWithoutDropout(h2);
        return new BlockOutput(scope.Keep(branch), scope.Keep(stream2));
    }
}

/// <summary>
/// A pre-LN decoder block with cross-attention (the original transformer's decoder layer, pre-LN):
/// causal self-attention, cross-attention over the encoder's output, MLP; residual adds fused into the next
/// LayerNorm as in <see cref="TransformerBlock"/>.
/// </summary>
/// <remarks>Names: <c>ln1</c>, <c>self_attention</c>, <c>ln2</c>, <c>cross_attention</c>, <c>ln3</c>,
/// <c>mlp</c>.</remarks>
public sealed class DecoderBlock : Module
{
    /// <summary>Creates a block (parameters zero-filled until initialized).</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="modelDimension">C.</param>
    /// <param name="heads">H.</param>
    /// <param name="kvHeads">Hkv.</param>
    /// <param name="mlpDimension">The MLP's hidden width.</param>
    /// <param name="dropout">The residual dropout probability.</param>
    /// <param name="epsilon">The LayerNorms' epsilon.</param>
    /// <param name="std">The standard deviation of the input projections' initialization.</param>
    /// <param name="residualStd">The standard deviation of the residual output projections' initialization.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns it and disposes it.</remarks>
    public DecoderBlock(Context context, int modelDimension, int heads, int kvHeads, int mlpDimension, float dropout = 0f,
        float epsilon = Ops.DefaultEpsilon, float std = 0.02f, float residualStd = 0.02f) : base(context)
    {
        Ln1 = RegisterModule("ln1", new LayerNorm(context, modelDimension, epsilon));
        SelfAttention = RegisterModule("self_attention",
            new MultiHeadAttention(context, modelDimension, heads, kvHeads, true, false, dropout, std, residualStd));
        Ln2 = RegisterModule("ln2", new LayerNorm(context, modelDimension, epsilon));
        CrossAttention = RegisterModule("cross_attention",
            new MultiHeadAttention(context, modelDimension, heads, kvHeads, false, true, dropout, std, residualStd));
        Ln3 = RegisterModule("ln3", new LayerNorm(context, modelDimension, epsilon));
        Mlp = RegisterModule("mlp", new Mlp(context, modelDimension, mlpDimension, dropout, std, residualStd));
    }

    /// <summary>The LayerNorm before self-attention.</summary>
    public LayerNorm Ln1 { get; }

    /// <summary>The causal self-attention.</summary>
    public MultiHeadAttention SelfAttention { get; }

    /// <summary>The LayerNorm before cross-attention.</summary>
    public LayerNorm Ln2 { get; }

    /// <summary>The cross-attention over the encoder's output.</summary>
    public MultiHeadAttention CrossAttention { get; }

    /// <summary>The LayerNorm before the MLP.</summary>
    public LayerNorm Ln3 { get; }

    /// <summary>The MLP.</summary>
    public Mlp Mlp { get; }

    /// <summary>Applies the block to <c>x + residual</c>, leaving its final residual add pending.</summary>
    /// <param name="x">The previous branch's output (or the target embeddings), [B, Tt, C].</param>
    /// <param name="residual">The residual stream, or null.</param>
    /// <param name="memory">The encoder's output, [B, Ts, C].</param>
    /// <param name="memoryLengths">Valid source tokens per sequence, [B] i32; or null.</param>
    /// <returns>The pending output. Ownership: see <see cref="Fn"/>.</returns>
    public BlockOutput Forward(Variable x, Variable? residual, Variable memory, Tensor? memoryLengths = null)
    {
        using var scope = new ForwardScope();
        var (h, stream) = Ln1.Forward(x, residual);
        var selfAttended = SelfAttention.Forward(h);
        var (h2, stream2) = Ln2.Forward(selfAttended, stream);
        var crossAttended = CrossAttention.Forward(h2, memory, memoryLengths);
        var (h3, stream3) = Ln3.Forward(crossAttended, stream2);
        var branch = Mlp.Forward(h3);
        return new BlockOutput(scope.Keep(branch), scope.Keep(stream3));
    }

    /// <summary>Applies the block with its final residual add.</summary>
    /// <param name="x">The input, [B, Tt, C].</param>
    /// <param name="memory">The encoder's output, [B, Ts, C].</param>
    /// <param name="memoryLengths">Valid source tokens per sequence, [B] i32; or null.</param>
    /// <returns>[B, Tt, C]. Ownership: see <see cref="Fn"/>.</returns>
    public Variable Forward(Variable x, Variable memory, Tensor? memoryLengths = null)
    {
        using var scope = new ForwardScope();
        var (branch, residual) = Forward(x, null, memory, memoryLengths);
        return scope.Keep(Fn.Add(branch, residual));
    }
}
