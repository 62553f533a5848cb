namespace NativeEngine.Autograd;

// Flash attention over views of fused projections.
public static partial class Fn
{
    /// <summary>Self-attention over a fused QKV projection (<c>ne_attention_forward</c> /
    /// <c>ne_attention_backward</c>) with zero copies: q, k and v are strided views of
    /// <paramref name="qkv"/>, and the backward pass writes dq, dk and dv straight into the matching views of
    /// <paramref name="qkv"/>'s gradient buffer.</summary>
    /// <param name="qkv">The fused projection, [B, T, (H + 2 Hkv) D]: per token the H query heads, then the Hkv
    /// key heads, then the Hkv value heads, each of D channels.</param>
    /// <param name="heads">H, the query heads.</param>
    /// <param name="kvHeads">Hkv, the key/value heads; H is a multiple of it (grouped-query attention; 1 is
    /// multi-query attention, H the usual multi-head attention).</param>
    /// <param name="causal">Causal masking: query i sees keys j &lt;= i.</param>
    /// <param name="keyLengths">Valid keys per sequence, [B] i32 (padding masks the keys at and after the
    /// length); or null. With <paramref name="causal"/>, the mask is aligned to the end of the valid keys (see
    /// <see cref="Ops.AttentionForward"/>), which suits left-aligned decoding but not right-padded batches.</param>
    /// <param name="scale">Multiplies q·k; 0 means 1/sqrt(D).</param>
    /// <returns>The attention output, [B, T, H D] (heads concatenated, ready for the output projection).
    /// Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="qkv"/> is not 3-D, or its width is not a multiple of
    /// <c>H + 2 Hkv</c>, or a head count is not positive.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments (such as D above 256, or H not a
    /// multiple of Hkv).</exception>
    public static Variable SelfAttention(Variable qkv, int heads, int kvHeads, bool causal, Tensor? keyLengths = null,
        float scale = 0f)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        var shape = RequireShape3(qkv, nameof(qkv));
        var headDim = HeadDim(shape[2], heads + 2L * kvHeads, heads, kvHeads, nameof(qkv));
        long batch = shape[0], tokens = shape[1];
        var tape = GradientTape.ForRecording(qkv.RequiresGrad);
        var context = qkv.Context;
        var value = qkv.Value;
        var q = HeadView(value, 0, heads, headDim);
        var k = HeadView(value, heads * headDim, kvHeads, headDim);
        var v = HeadView(value, (heads + kvHeads) * headDim, kvHeads, headDim);
        var y = NewOutput(context, tape, [batch, tokens, heads * headDim]);
        var y4 = y.View(y.Offset, [batch, tokens, heads, headDim]);
        var lse = tape?.NewTensor(context, [batch, heads, tokens]);
        Run(() => Ops.AttentionForward(context, q, k, v, y4, lse, keyLengths, causal, scale), y, y4, lse);
        var result = Result(y, tape);
        if (tape is null)
        {
            q.Dispose();
            k.Dispose();
            v.Dispose();
            y4.Dispose();
            return result;
        }
        foreach (var view in (ReadOnlySpan<Tensor>)[q, k, v, y4])
        {
            view.MoveTo(tape.Scope);
        }
        var keptLengths = keyLengths is null ? null : tape.Keep(keyLengths);
        tape.Record(() =>
        {
            var slot = tape.BeginOverwrite(qkv, context, shape);
            var target = slot.Target;
            using var dq = HeadView(target, 0, heads, headDim);
            using var dk = HeadView(target, heads * headDim, kvHeads, headDim);
            using var dv = HeadView(target, (heads + kvHeads) * headDim, kvHeads, headDim);
            var dy = GradientTape.OutputGradient(result)!;
            using var dy4 = dy.View(dy.Offset, [batch, tokens, heads, headDim]);
            Ops.AttentionBackward(context, q, k, v, y4, lse!, dy4, dq, dk, dv, keptLengths, causal, scale);
            GradientTape.Commit(slot);
        }, result);
        return result;
    }

    /// <summary>Cross-attention of queries over a fused key/value projection (of an encoder's output), with zero
    /// copies: k and v are strided views of <paramref name="kv"/>, and dk, dv land in the matching views of its
    /// gradient buffer.</summary>
    /// <param name="q">The query projection, [B, Tq, H D].</param>
    /// <param name="kv">The fused key/value projection, [B, Tk, 2 Hkv D]: per token the Hkv key heads, then the
    /// Hkv value heads.</param>
    /// <param name="heads">H, the query heads.</param>
    /// <param name="kvHeads">Hkv, the key/value heads; H is a multiple of it.</param>
    /// <param name="keyLengths">Valid keys per sequence (source lengths), [B] i32; or null.</param>
    /// <param name="causal">Causal masking aligned to the end of the keys (rarely wanted for cross-attention).</param>
    /// <param name="scale">Multiplies q·k; 0 means 1/sqrt(D).</param>
    /// <returns>The attention output, [B, Tq, H D]. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException">A projection is not 3-D, or their widths do not split into the heads.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Variable CrossAttention(Variable q, Variable kv, int heads, int kvHeads, Tensor? keyLengths = null,
        bool causal = false, float scale = 0f)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(kv);
        var qShape = RequireShape3(q, nameof(q));
        var kvShape = RequireShape3(kv, nameof(kv));
        var headDim = HeadDim(qShape[2], heads, heads, kvHeads, nameof(q));
        if (kvShape[2] != 2L * kvHeads * headDim)
        {
            throw new ArgumentException(
                $"The fused key/value projection must be {2L * kvHeads * headDim} wide (2 x {kvHeads} heads x {headDim}); got {kvShape[2]}.",
                nameof(kv));
        }
        long batch = qShape[0], tokens = qShape[1];
        var tape = GradientTape.ForRecording(q.RequiresGrad || kv.RequiresGrad);
        var context = q.Context;
        var q4 = HeadView(q.Value, 0, heads, headDim);
        var k = HeadView(kv.Value, 0, kvHeads, headDim);
        var v = HeadView(kv.Value, kvHeads * headDim, kvHeads, headDim);
        var y = NewOutput(context, tape, [batch, tokens, heads * headDim]);
        var y4 = y.View(y.Offset, [batch, tokens, heads, headDim]);
        var lse = tape?.NewTensor(context, [batch, heads, tokens]);
        Run(() => Ops.AttentionForward(context, q4, k, v, y4, lse, keyLengths, causal, scale), y, y4, lse);
        var result = Result(y, tape);
        if (tape is null)
        {
            q4.Dispose();
            k.Dispose();
            v.Dispose();
            y4.Dispose();
            return result;
        }
        foreach (var view in (ReadOnlySpan<Tensor>)[q4, k, v, y4])
        {
            view.MoveTo(tape.Scope);
        }
        var keptLengths = keyLengths is null ? null : tape.Keep(keyLengths);
        tape.Record(() =>
        {
            var qSlot = tape.BeginOverwrite(q, context, qShape);
            var kvSlot = tape.BeginOverwrite(kv, context, kvShape);
            using var dq = HeadView(qSlot.Target, 0, heads, headDim);
            using var dk = HeadView(kvSlot.Target, 0, kvHeads, headDim);
            using var dv = HeadView(kvSlot.Target, kvHeads * headDim, kvHeads, headDim);
            var dy = GradientTape.OutputGradient(result)!;
            using var dy4 = dy.View(dy.Offset, [batch, tokens, heads, headDim]);
            Ops.AttentionBackward(context, q4, k, v, y4, lse!, dy4, dq, dk, dv, keptLengths, causal, scale);
            GradientTape.Commit(qSlot);
            GradientTape.Commit(kvSlot);
        }, result);
        return result;
    }

    /// <summary>Attention over separate query, key and value variables in the kernel's layout (any strides with
    /// a contiguous last dimension, such as views): <c>softmax(scale q k^T + mask) v</c>.</summary>
    /// <param name="q">Queries, [B, Tq, H, D].</param>
    /// <param name="k">Keys, [B, Tk, Hkv, D].</param>
    /// <param name="v">Values, [B, Tk, Hkv, D].</param>
    /// <param name="causal">Causal masking aligned to the end of the keys.</param>
    /// <param name="keyLengths">Valid keys per sequence, [B] i32; or null.</param>
    /// <param name="scale">Multiplies q·k; 0 means 1/sqrt(D).</param>
    /// <returns>The output, [B, Tq, H, D]. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Variable Attention(Variable q, Variable k, Variable v, bool causal = false, Tensor? keyLengths = null,
        float scale = 0f)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        var tape = GradientTape.ForRecording(q.RequiresGrad || k.RequiresGrad || v.RequiresGrad);
        var context = q.Context;
        var y = NewOutput(context, tape, q.Shape);
        var lse = tape is null || q.Shape.Count != 4 ? null : tape.NewTensor(context, [q.Shape[0], q.Shape[2], q.Shape[1]]);
        Run(() => Ops.AttentionForward(context, q.Value, k.Value, v.Value, y, lse, keyLengths, causal, scale), y, lse);
        var result = Result(y, tape);
        if (tape is not null)
        {
            var keptLengths = keyLengths is null ? null : tape.Keep(keyLengths);
            tape.Record(() =>
            {
                // Slots in order: a variable passed twice (k and v) gets its own buffer once, then a temporary.
                var qSlot = tape.BeginOverwrite(q, context, q.Shape);
                var kSlot = tape.BeginOverwrite(k, context, k.Shape);
                var vSlot = tape.BeginOverwrite(v, context, v.Shape);
                Ops.AttentionBackward(context, q.Value, k.Value, v.Value, y, lse!, GradientTape.OutputGradient(result)!,
                    qSlot.Target, kSlot.Target, vSlot.Target, keptLengths, causal, scale);
                GradientTape.Commit(qSlot);
                GradientTape.Commit(kSlot);
                GradientTape.Commit(vSlot);
            }, result);
        }
        return result;
    }

    /// <summary>The [B, T, heads, D] view of the heads starting at channel <paramref name="first"/> of a
    /// [B, T, W] projection.</summary>
    internal static Tensor HeadView(Tensor projection, long first, long heads, long headDim)
    {
        var strides = projection.Strides;
        var shape = projection.Shape;
        return projection.View(projection.Offset + first * strides[2], [shape[0], shape[1], heads, headDim],
            [strides[0], strides[1], headDim * strides[2], strides[2]]);
    }

    private static IReadOnlyList<long> RequireShape3(Variable x, string name)
    {
        var shape = x.Shape;
        if (shape.Count != 3)
        {
            throw new ArgumentException($"Expected a [B, T, width] projection for '{name}', got shape [{string.Join(", ", shape)}].", name);
        }
        return shape;
    }

    private static long HeadDim(long width, long totalHeads, int heads, int kvHeads, string name)
    {
        if (heads < 1 || kvHeads < 1)
        {
            throw new ArgumentException($"Head counts must be positive; got {heads} query heads and {kvHeads} key/value heads.", name);
        }
        if (width % totalHeads != 0 || width == 0)
        {
            throw new ArgumentException(
                $"The projection's width {width} does not split into {totalHeads} heads of one size.", name);
        }
        return width / totalHeads;
    }
}
