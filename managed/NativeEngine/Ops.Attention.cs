using NativeEngine.Interop;

namespace NativeEngine;

// Flash attention. Shapes: q, output [B, Tq, H, D]; k, v [B, Tk, Hkv, D] with H a multiple of Hkv
// (grouped-query attention); lse [B, H, Tq]; key lengths [B].
public static partial class Ops
{
    /// <summary>Flash attention forward (<c>ne_attention_forward</c>):
    /// <c>output = softmax(scale * q k^T + mask) v</c>, tiled with an online softmax (no [Tq, Tk]
    /// buffer), f32 on the CPU. Query head h reads key/value head <c>h / (H / Hkv)</c>. With
    /// <paramref name="causal"/>, query i of sequence b sees key j only if <c>j &lt;= i + (L_b - Tq)</c>
    /// (the queries are the last Tq positions, as when decoding against a cache). A row that sees no
    /// key gets output 0 and lse -infinity.</summary>
    /// <param name="context">The context the kernel runs on; every tensor must belong to it.</param>
    /// <param name="q">Queries, [B, Tq, H, D] f32, last dimension contiguous, other strides free
    /// (views of a fused QKV projection work without a copy); D is 1..256.</param>
    /// <param name="k">Keys, [B, Tk, Hkv, D].</param>
    /// <param name="v">Values, [B, Tk, Hkv, D].</param>
    /// <param name="output">Receives the attention output, [B, Tq, H, D].</param>
    /// <param name="lse">Receives each row's log-sum-exp, [B, H, Tq] f32 contiguous, for the backward
    /// pass; or null (inference).</param>
    /// <param name="keyLengths">Valid keys per sequence, [B] i32 in 0..Tk; or null for Tk everywhere.</param>
    /// <param name="causal">Causal masking, aligned to the end of the keys.</param>
    /// <param name="scale">Multiplies q·k; 0 (the default) means 1/sqrt(D).</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void AttentionForward(Context context, Tensor q, Tensor k, Tensor v, Tensor output,
        Tensor? lse = null, Tensor? keyLengths = null, bool causal = false, float scale = 0f)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = AttentionParams(causal, scale);
        NativeStatus.Check(NativeMethods.ne_attention_forward(context.Handle, &parameters,
            Required(q, nameof(q)), Required(k, nameof(k)), Required(v, nameof(v)),
            Optional(keyLengths, nameof(keyLengths)), Required(output, nameof(output)), Optional(lse, nameof(lse))));
    }

    /// <summary>Flash attention backward (<c>ne_attention_backward</c>): from <paramref name="doutput"/>
    /// and the forward pass's <paramref name="output"/> and <paramref name="lse"/>, overwrites
    /// <paramref name="dq"/>, <paramref name="dk"/> and <paramref name="dv"/>. Deterministic: the same
    /// bits on every run and for every thread count, unless <paramref name="allowAtomics"/>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="q">Queries, [B, Tq, H, D].</param>
    /// <param name="k">Keys, [B, Tk, Hkv, D].</param>
    /// <param name="v">Values, [B, Tk, Hkv, D].</param>
    /// <param name="output">The forward pass's output, [B, Tq, H, D].</param>
    /// <param name="lse">The forward pass's log-sum-exp, [B, H, Tq].</param>
    /// <param name="doutput">The gradient of the output, [B, Tq, H, D].</param>
    /// <param name="dq">Receives the gradient of q, [B, Tq, H, D].</param>
    /// <param name="dk">Receives the gradient of k, [B, Tk, Hkv, D].</param>
    /// <param name="dv">Receives the gradient of v, [B, Tk, Hkv, D].</param>
    /// <param name="keyLengths">As in the forward pass.</param>
    /// <param name="causal">As in the forward pass.</param>
    /// <param name="scale">As in the forward pass.</param>
    /// <param name="allowAtomics">Lets a device add the contributions to dq with atomic adds in any
    /// order: one pass over the scores instead of two, faster, but dq may differ in its last bits
    /// between runs (dk and dv do not). False (the default) keeps training runs bit-reproducible. The
    /// CPU is deterministic either way.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void AttentionBackward(Context context, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse,
        Tensor doutput, Tensor dq, Tensor dk, Tensor dv, Tensor? keyLengths = null, bool causal = false, float scale = 0f,
        bool allowAtomics = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = AttentionParams(causal, scale);
        parameters.AllowAtomics = allowAtomics ? 1 : 0;
        NativeStatus.Check(NativeMethods.ne_attention_backward(context.Handle, &parameters,
            Required(q, nameof(q)), Required(k, nameof(k)), Required(v, nameof(v)),
            Optional(keyLengths, nameof(keyLengths)), Required(output, nameof(output)), Required(lse, nameof(lse)),
            Required(doutput, nameof(doutput)), Required(dq, nameof(dq)), Required(dk, nameof(dk)), Required(dv, nameof(dv))));
    }

    /// <summary>Attention of <paramref name="q"/> over <paramref name="k"/> and <paramref name="v"/>
    /// into a new tensor, on <paramref name="q"/>'s context. See <see cref="AttentionForward"/>.</summary>
    /// <param name="q">Queries, [B, Tq, H, D] f32.</param>
    /// <param name="k">Keys, [B, Tk, Hkv, D].</param>
    /// <param name="v">Values, [B, Tk, Hkv, D].</param>
    /// <param name="causal">Causal masking, aligned to the end of the keys.</param>
    /// <param name="scale">Multiplies q·k; 0 means 1/sqrt(D).</param>
    /// <param name="keyLengths">Valid keys per sequence, [B] i32; or null.</param>
    /// <returns>The output, a new [B, Tq, H, D] f32 tensor. Ownership: the caller (or the current
    /// <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, bool causal = false, float scale = 0f, Tensor? keyLengths = null)
    {
        ArgumentNullException.ThrowIfNull(q);
        return Allocate(q.Context, Dtype.F32, q.Shape,
            output => AttentionForward(q.Context, q, k, v, output, keyLengths: keyLengths, causal: causal, scale: scale));
    }

    private static unsafe NeAttentionParams AttentionParams(bool causal, float scale) => new()
    {
        StructSize = (uint)sizeof(NeAttentionParams),
        Scale = scale,
        Causal = causal ? 1 : 0,
    };
}
