using System.Buffers;
using System.Runtime.InteropServices;

namespace NativeEngine.Checkpoints;

/// <summary>
/// Moves a tensor's elements to and from little-endian bytes in chunks, through the public copies of
/// <see cref="Tensor"/> only (<see cref="Tensor.CopyTo{T}"/>, <see cref="Tensor.CopyFrom{T}"/>) and
/// 1-D views of contiguous tensors, so that a large tensor never needs a host copy of its own size.
/// </summary>
internal static class TensorBytes
{
    /// <summary>The largest chunk copied at once.</summary>
    internal const int ChunkBytes = 16 << 20;

    /// <summary>The size of one element of a NativeEngine dtype.</summary>
    internal static int ElementSize(Dtype dtype) => SafeTensorsDtypes.FromDtype(dtype).ElementSize();

    /// <summary>Calls <paramref name="sink"/> with the tensor's elements, row-major, in order, in chunks of
    /// at most <see cref="ChunkBytes"/> bytes (the span is valid only during the call).</summary>
    internal static void Read(Tensor tensor, Action<ReadOnlySpan<byte>> sink, CancellationToken cancellationToken)
    {
        if (!tensor.IsContiguous)
        {
            using var contiguous = tensor.Clone();
            Read(contiguous, sink, cancellationToken);
            return;
        }
        var elementSize = ElementSize(tensor.Dtype);
        var count = tensor.ElementCount;
        var chunkElements = ChunkBytes / elementSize;
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(count, chunkElements) * elementSize);
        try
        {
            if (count <= chunkElements)
            {
                var bytes = buffer.AsSpan(0, (int)count * elementSize);
                CopyTo(tensor, bytes);
                sink(bytes);
                return;
            }
            for (long start = 0; start < count; start += chunkElements)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var n = Math.Min(chunkElements, count - start);
                using var view = tensor.View(tensor.Offset + start, [n]);
                var bytes = buffer.AsSpan(0, (int)n * elementSize);
                CopyTo(view, bytes);
                sink(bytes);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Fills the tensor, row-major, from <paramref name="source"/>, which must fill each span it is
    /// given completely (chunks of at most <see cref="ChunkBytes"/> bytes, in order).</summary>
    internal static void Write(Tensor tensor, Action<Span<byte>> source, CancellationToken cancellationToken)
    {
        if (!tensor.IsContiguous)
        {
            using var staging = Tensor.Create(tensor.Context, tensor.Dtype, [.. tensor.Shape]);
            Write(staging, source, cancellationToken);
            tensor.CopyFrom(staging);
            return;
        }
        var elementSize = ElementSize(tensor.Dtype);
        var count = tensor.ElementCount;
        var chunkElements = ChunkBytes / elementSize;
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(count, chunkElements) * elementSize);
        try
        {
            if (count <= chunkElements)
            {
                var bytes = buffer.AsSpan(0, (int)count * elementSize);
                source(bytes);
                CopyFrom(tensor, bytes);
                return;
            }
            for (long start = 0; start < count; start += chunkElements)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var n = Math.Min(chunkElements, count - start);
                var bytes = buffer.AsSpan(0, (int)n * elementSize);
                source(bytes);
                using var view = tensor.View(tensor.Offset + start, [n]);
                CopyFrom(view, bytes);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void CopyTo(Tensor tensor, Span<byte> destination)
    {
        switch (tensor.Dtype)
        {
            case Dtype.F32:
                tensor.CopyTo(MemoryMarshal.Cast<byte, float>(destination));
                break;
            case Dtype.I32:
                tensor.CopyTo(MemoryMarshal.Cast<byte, int>(destination));
                break;
            case Dtype.I8:
                tensor.CopyTo(MemoryMarshal.Cast<byte, sbyte>(destination));
                break;
            case Dtype.F16:
            case Dtype.Bf16:
                tensor.CopyTo(MemoryMarshal.Cast<byte, ushort>(destination));
                break;
            default:
                throw new NotSupportedException($"Dtype {tensor.Dtype} has no host element type.");
        }
    }

    private static void CopyFrom(Tensor tensor, ReadOnlySpan<byte> source)
    {
        switch (tensor.Dtype)
        {
            case Dtype.F32:
                tensor.CopyFrom(MemoryMarshal.Cast<byte, float>(source));
                break;
            case Dtype.I32:
                tensor.CopyFrom(MemoryMarshal.Cast<byte, int>(source));
                break;
            case Dtype.I8:
                tensor.CopyFrom(MemoryMarshal.Cast<byte, sbyte>(source));
                break;
            case Dtype.F16:
            case Dtype.Bf16:
                tensor.CopyFrom(MemoryMarshal.Cast<byte, ushort>(source));
                break;
            default:
                throw new NotSupportedException($"Dtype {tensor.Dtype} has no host element type.");
        }
    }
}
