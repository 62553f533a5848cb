using NativeEngine.Interop;

namespace NativeEngine;

/// <summary>
/// The kernels, one partial file per family: normalization (Ops.Normalization.cs), int8
/// (Ops.Int8.cs), GEMM (Ops.Gemm.cs), attention (Ops.Attention.cs), the softmax cross-entropy
/// losses (Ops.CrossEntropy.cs), and the small ops of the model: element-wise ops, GELU, dropout and
/// softmax (Ops.Elementwise.cs), reductions (Ops.Reduce.cs), embeddings (Ops.Embedding.cs) and the
/// AdamW update (Ops.Optimizer.cs).
/// </summary>
/// <remarks>
/// <para>Two flavours. The thin wrappers (<c>LayerNormForward</c>, <c>Gemm</c>, <c>AttentionForward</c>, ...)
/// map one to one onto the C functions: the caller passes every tensor, outputs included, and an
/// optional argument passed as <see langword="null"/> is NULL to the library. The allocating
/// conveniences (<see cref="LayerNorm"/>, <see cref="MatMul"/>, <see cref="Attention"/>, ...) run on
/// the context of their first tensor and return new output tensors that the caller owns (or the
/// current <see cref="TensorScope"/> does); if the kernel fails they dispose those outputs before
/// throwing.</para>
/// <para>The library validates every shape, dtype and context and reports a violation as
/// <see cref="NativeEngineException"/> naming the argument (<see cref="Status.ShapeMismatch"/>,
/// <see cref="Status.DtypeMismatch"/>, <see cref="Status.ContextMismatch"/>, ...); a failing call
/// leaves its outputs untouched. Every method throws <see cref="ArgumentNullException"/> for a
/// required tensor that is null and <see cref="ObjectDisposedException"/> for a disposed context or
/// tensor.</para>
/// </remarks>
public static partial class Ops
{
    private static TensorHandle Required(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        return tensor.HandleFor(name);
    }

    private static TensorHandle Optional(Tensor? tensor, string name) =>
        tensor is null ? TensorHandle.Null : tensor.HandleFor(name);

    // The rows and columns of a 2-D tensor; the output shapes of the allocating GEMMs need them.
    private static (long Rows, long Cols) Matrix(Tensor tensor, string name)
    {
        var shape = tensor.Shape;
        if (shape.Count != 2)
        {
            throw new ArgumentException(
                $"Expected a 2-D matrix for '{name}', got a tensor of shape [{string.Join(", ", shape)}].", name);
        }
        return (shape[0], shape[1]);
    }

    // Creates an output, runs the kernel into it, and disposes it if the kernel fails.
    private static Tensor Allocate(Context context, Dtype dtype, IReadOnlyList<long> shape, Action<Tensor> kernel)
    {
        Span<long> dims = stackalloc long[shape.Count];
        for (var i = 0; i < dims.Length; i++)
        {
            dims[i] = shape[i];
        }
        var output = Tensor.Create(context, dtype, dims);
        try
        {
            kernel(output);
            return output;
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }
}
