namespace NativeEngine.Autograd;

/// <summary>Views that reshape tensors for the kernels without copying. Every method returns a new handle
/// that the caller disposes (the memory stays alive as long as any handle does).</summary>
internal static class TensorViews
{
    /// <summary>A 2-D view [rows, last dimension] of <paramref name="tensor"/>: its leading dimensions
    /// collapsed into rows. A copy (then viewed) only when they do not collapse into rows of one stride or the
    /// last dimension is not contiguous.</summary>
    public static Tensor Matrix(Tensor tensor)
    {
        var shape = tensor.Shape;
        var rank = shape.Count;
        if (rank == 0)
        {
            return Reshape(tensor, [1, 1]);
        }
        var cols = shape[rank - 1];
        var rows = cols == 0 ? 0 : tensor.ElementCount / cols;
        if (tensor.IsContiguous)
        {
            return tensor.View(tensor.Offset, [rows, cols]);
        }
        if (TryRowStride(tensor, out var rowStride))
        {
            return tensor.View(tensor.Offset, [rows, cols], [rowStride, 1]);
        }
        using var copy = tensor.Clone();
        return copy.View(copy.Offset, [rows, cols]);
    }

    /// <summary>A view of <paramref name="tensor"/> with another shape of the same element count (a copy
    /// first when the tensor is not contiguous).</summary>
    public static Tensor Reshape(Tensor tensor, ReadOnlySpan<long> shape)
    {
        if (tensor.IsContiguous)
        {
            return tensor.View(tensor.Offset, shape);
        }
        using var copy = tensor.Clone();
        return copy.View(copy.Offset, shape);
    }

    /// <summary>A 1-D view of all elements of <paramref name="tensor"/>.</summary>
    public static Tensor Flat(Tensor tensor) => Reshape(tensor, [tensor.ElementCount]);

    /// <summary>A view of the same memory and layout: a second handle.</summary>
    public static Tensor Alias(Tensor tensor)
    {
        Span<long> shape = stackalloc long[tensor.Rank];
        Span<long> strides = stackalloc long[tensor.Rank];
        for (var i = 0; i < shape.Length; i++)
        {
            shape[i] = tensor.Shape[i];
            strides[i] = tensor.Strides[i];
        }
        return tensor.View(tensor.Offset, shape, strides);
    }

    /// <summary>Whether the last dimension is contiguous and the leading ones collapse into rows of one
    /// stride, and that stride.</summary>
    private static bool TryRowStride(Tensor tensor, out long rowStride)
    {
        var shape = tensor.Shape;
        var strides = tensor.Strides;
        var rank = shape.Count;
        rowStride = shape[rank - 1];
        if (shape[rank - 1] != 1 && strides[rank - 1] != 1)
        {
            return false;
        }
        if (rank == 1)
        {
            return true;
        }
        // The innermost leading dimension of size > 1 sets the row stride; outer ones must follow it.
        long expected = -1;
        for (var i = rank - 2; i >= 0; i--)
        {
            if (shape[i] == 1)
            {
                continue;
            }
            if (expected < 0)
            {
                rowStride = strides[i];
                expected = strides[i] * shape[i];
            }
            else if (strides[i] != expected)
            {
                return false;
            }
            else
            {
                expected *= shape[i];
            }
        }
        return true;
    }
}
