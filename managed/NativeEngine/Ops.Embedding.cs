using NativeEngine.Interop;

namespace NativeEngine;

// Embedding lookup and its gradient. Shapes: table [V, C]; ids i32 of any shape with values in
// [0, V); output ids' shape + [C].
public static partial class Ops
{
    /// <summary>Embedding lookup (<c>ne_embedding_forward</c>): <c>output[..., :] = table[ids[...], :]</c>.</summary>
    /// <param name="context">The context the kernel runs on; every tensor must belong to it.</param>
    /// <param name="table">The embedding table, [V, C] f32.</param>
    /// <param name="ids">The ids, i32 of any shape, each in [0, V).</param>
    /// <param name="output">Receives the rows, f32 of <paramref name="ids"/>' shape followed by C.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments (such as an id out of range,
    /// named by its flat index).</exception>
    public static void EmbeddingForward(Context context, Tensor table, Tensor ids, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_embedding_forward(context.Handle,
            Required(table, nameof(table)), Required(ids, nameof(ids)), Required(output, nameof(output))));
    }

    /// <summary>Embedding backward (<c>ne_embedding_backward</c>): <c>dtable[ids[...], :] += doutput[..., :]</c>,
    /// repeated ids adding up in a fixed order. Without <paramref name="accumulate"/>, <paramref name="dtable"/>
    /// is zeroed first; with it, the rows not in <paramref name="ids"/> are untouched.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="ids">The ids of the forward pass, i32.</param>
    /// <param name="doutput">The output gradient, f32 of <paramref name="ids"/>' shape followed by C.</param>
    /// <param name="dtable">Receives the table's gradient, [V, C] f32.</param>
    /// <param name="accumulate">True adds into <paramref name="dtable"/>; false overwrites it.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void EmbeddingBackward(Context context, Tensor ids, Tensor doutput, Tensor dtable, bool accumulate = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_embedding_backward(context.Handle,
            Required(ids, nameof(ids)), Required(doutput, nameof(doutput)), Required(dtable, nameof(dtable)), accumulate ? 1 : 0));
    }

    /// <summary>The rows of <paramref name="table"/> named by <paramref name="ids"/>, into a new tensor on the
    /// table's context. See <see cref="EmbeddingForward"/>.</summary>
    /// <param name="table">The embedding table, [V, C] f32.</param>
    /// <param name="ids">The ids, i32 of any shape.</param>
    /// <returns>A new f32 tensor of <paramref name="ids"/>' shape followed by C. Ownership: the caller (or the
    /// current <see cref="TensorScope"/>).</returns>
    /// <exception cref="ArgumentException"><paramref name="table"/> is not 2-D.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Embedding(Tensor table, Tensor ids)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(ids);
        var (_, channels) = Matrix(table, nameof(table));
        var idsShape = ids.Shape;
        var shape = new long[idsShape.Count + 1];
        for (var i = 0; i < idsShape.Count; i++)
        {
            shape[i] = idsShape[i];
        }
        shape[^1] = channels;
        return Allocate(table.Context, Dtype.F32, shape, output => EmbeddingForward(table.Context, table, ids, output));
    }
}
