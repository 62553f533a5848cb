namespace NativeEngine.Checkpoints;

/// <summary>One tensor of a safetensors file, as its header describes it (validated by
/// <see cref="SafeTensorsFile.Open"/>).</summary>
public sealed class SafeTensorInfo
{
    internal SafeTensorInfo(string name, SafeTensorsDtype dtype, long[] shape, long begin, long end)
    {
        Name = name;
        Dtype = dtype;
        Shape = Array.AsReadOnly(shape);
        Begin = begin;
        End = end;
        ElementCount = shape.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>The tensor's name (a key of the header).</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public SafeTensorsDtype Dtype { get; }

    /// <summary>The dimensions, outermost first; empty for a scalar.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The number of elements: the product of the dimensions (1 for a scalar, 0 when a
    /// dimension is 0).</summary>
    public long ElementCount { get; }

    /// <summary>The first byte of the data, relative to the start of the data buffer (<c>data_offsets[0]</c>).</summary>
    public long Begin { get; }

    /// <summary>One past the last byte of the data, relative to the start of the data buffer (<c>data_offsets[1]</c>).</summary>
    public long End { get; }

    /// <summary>The size of the data in bytes: <c>End - Begin</c>, which is <see cref="ElementCount"/> times
    /// the element size.</summary>
    public long ByteLength => End - Begin;

    /// <summary>Describes the tensor, such as <c>w: F32 [2, 3]</c>.</summary>
    /// <returns>The description.</returns>
    public override string ToString() => $"{Name}: {Dtype.ToSpecString()} {FormatShape(Shape)}";

    internal static string FormatShape(IEnumerable<long> shape) => $"[{string.Join(", ", shape)}]";
}
