using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace NativeEngine.Checkpoints;

/// <summary>
/// Collects named tensors and metadata, then writes them as one safetensors file
/// (https://github.com/huggingface/safetensors) with <see cref="Save"/>, atomically.
/// </summary>
/// <remarks>
/// <para>Layout written: an 8-byte little-endian length N, N bytes of compact UTF-8 JSON padded with
/// spaces so that the data starts at a multiple of 8, then the data buffer. The JSON holds
/// <c>"__metadata__"</c> first (keys in ordinal order, <see cref="ChecksumKey"/> among them) and then
/// one entry per tensor: <c>{"dtype":"F32","shape":[2,3],"data_offsets":[b,e]}</c>. The tensors' data follow
/// each other in the order of the entries, row-major, little-endian, without gaps, so the offsets cover the
/// buffer exactly. That order is by decreasing element size (8-byte dtypes first, then 4, 2, 1), and by order
/// of addition within a size, as the Python library does: every tensor then starts at a multiple of its
/// element size in the file, which zero-copy (memory-mapping) readers need. Other tools (the Python
/// safetensors library) read these files.</para>
/// <para>Checksum: <c>__metadata__["sha256"]</c> is the lowercase hex SHA-256 of the whole data buffer;
/// <see cref="SafeTensorsFile.Open"/> verifies it.</para>
/// <para>Memory: <see cref="Add(string, Tensor)"/> keeps a reference and reads the tensor's elements
/// only during <see cref="Save"/>, in chunks of at most 16 MiB (through <see cref="Tensor.CopyTo{T}"/>
/// on 1-D views), so saving needs no host copy of a whole model. The tensor must stay alive and
/// unchanged until <see cref="Save"/> returns. The host-span overloads copy the elements when called.</para>
/// <para>A writer can be saved several times. Not thread-safe.</para>
/// </remarks>
public sealed class SafeTensorsWriter
{
    /// <summary>The metadata key of the data buffer's SHA-256 (lowercase hex), written by <see cref="Save"/>.</summary>
    public const string ChecksumKey = "sha256";

    /// <summary>The reserved header key of the metadata map.</summary>
    public const string MetadataKey = "__metadata__";

    private static readonly JsonWriterOptions s_jsonOptions = new()
    {
        // Keep non-ASCII names readable; the header is never embedded in HTML.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
    };

    private readonly List<Entry> _entries = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, string> _metadata = new(StringComparer.Ordinal);

    /// <summary>The number of tensors added.</summary>
    public int Count => _entries.Count;

    /// <summary>The tensor names, in the order they were added.</summary>
    public IReadOnlyList<string> Names => [.. _entries.Select(e => e.Name)];

    /// <summary>The metadata added with <see cref="AddMetadata"/>, in ordinal key order (without the checksum,
    /// which <see cref="Save"/> computes).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    /// <summary>Adds a metadata entry (<c>__metadata__</c> maps strings to strings).</summary>
    /// <param name="key">The key; not <see cref="ChecksumKey"/>, not already added.</param>
    /// <param name="value">The value.</param>
    /// <returns>This writer.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The key is reserved or already added.</exception>
    public SafeTensorsWriter AddMetadata(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        if (key == ChecksumKey)
        {
            throw new ArgumentException($"The metadata key '{ChecksumKey}' is reserved for the checksum that Save writes.", nameof(key));
        }
        if (!_metadata.TryAdd(key, value))
        {
            throw new ArgumentException($"The metadata key '{key}' was already added.", nameof(key));
        }
        return this;
    }

    /// <summary>Adds a tensor of NativeEngine memory; its elements are read during <see cref="Save"/>.</summary>
    /// <param name="name">The name; non-empty, not <c>"__metadata__"</c>, unique in this writer.</param>
    /// <param name="tensor">The tensor (any dtype, contiguous or not); it must stay alive and unchanged
    /// until <see cref="Save"/> returns. Its dtype maps to F32, F16, BF16, I8 or I32.</param>
    /// <returns>This writer.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added.</exception>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public SafeTensorsWriter Add(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        CheckName(name);
        var dtype = SafeTensorsDtypes.FromDtype(tensor.Dtype);
        var shape = tensor.Shape.ToArray();
        return AddEntry(new Entry(name, dtype, shape, tensor.ElementCount * dtype.ElementSize(), tensor, null));
    }

    /// <summary>Adds a tensor from host memory, copying its elements now. The dtype follows from
    /// <typeparamref name="T"/> (see <see cref="SafeTensorsDtypes.FromElementType{T}"/>); for BF16 use
    /// <see cref="Add(string, SafeTensorsDtype, ReadOnlySpan{long}, ReadOnlySpan{byte})"/>.</summary>
    /// <typeparam name="T">The element type.</typeparam>
    /// <param name="name">The name; non-empty, not <c>"__metadata__"</c>, unique in this writer.</param>
    /// <param name="data">The elements, row-major: as many as the shape holds.</param>
    /// <param name="shape">The dimensions, each &gt;= 0; empty for a scalar (one element).</param>
    /// <returns>This writer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added;
    /// <typeparamref name="T"/> stands for no dtype; a dimension is negative; or the element count
    /// of <paramref name="data"/> differs from the shape's.</exception>
    public SafeTensorsWriter Add<T>(string name, ReadOnlySpan<T> data, ReadOnlySpan<long> shape) where T : unmanaged
    {
        var dtype = SafeTensorsDtypes.FromElementType<T>() ?? throw new ArgumentException(
            $"Element type {typeof(T).Name} stands for no safetensors dtype; pass the bytes with an explicit SafeTensorsDtype.", nameof(data));
        return Add(name, dtype, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
    }

    /// <summary>Adds a tensor from host bytes (row-major, little-endian), copying them now.</summary>
    /// <param name="name">The name; non-empty, not <c>"__metadata__"</c>, unique in this writer.</param>
    /// <param name="dtype">The element type.</param>
    /// <param name="shape">The dimensions, each &gt;= 0; empty for a scalar (one element).</param>
    /// <param name="data">The bytes: the element count of the shape times the element size.</param>
    /// <returns>This writer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added; a dimension is
    /// negative; or the byte count differs from the shape's.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dtype"/> is not a defined value.</exception>
    public SafeTensorsWriter Add(string name, SafeTensorsDtype dtype, ReadOnlySpan<long> shape, ReadOnlySpan<byte> data)
    {
        CheckName(name);
        var elementSize = dtype.ElementSize();
        long count = 1;
        foreach (var dimension in shape)
        {
            if (dimension < 0)
            {
                throw new ArgumentException($"Tensor '{name}': shape {SafeTensorInfo.FormatShape(shape.ToArray())} has a negative dimension.", nameof(shape));
            }
            // Saturate: a product beyond any span's length is a mismatch all the same.
            const long limit = long.MaxValue / 8;
            count = dimension == 0 || count == 0 ? 0 : count > limit / dimension ? limit : count * dimension;
        }
        if (count * elementSize != data.Length)
        {
            throw new ArgumentException(
                $"Tensor '{name}': shape {SafeTensorInfo.FormatShape(shape.ToArray())} of {dtype.ToSpecString()} needs {count} elements " +
                $"({count * elementSize} bytes), got {data.Length} bytes.", nameof(data));
        }
        return AddEntry(new Entry(name, dtype, shape.ToArray(), data.Length, null, data.ToArray()));
    }

    /// <summary>Writes the file atomically: to a temporary file in the same folder, flushed to the disk,
    /// then renamed over <paramref name="path"/> (see <see cref="AtomicFile"/>). If anything fails (a
    /// disposed tensor, a cancellation, the disk), an existing file at <paramref name="path"/> is left
    /// as it was and the temporary file is deleted.</summary>
    /// <param name="path">The file to write; replaced if it exists. Its folder must exist.</param>
    /// <param name="cancellationToken">Checked between chunks of data.</param>
    /// <exception cref="ObjectDisposedException">A tensor added with <see cref="Add(string, Tensor)"/> was disposed.</exception>
    /// <exception cref="OperationCanceledException">The token was canceled.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="IOException">The file system failed.</exception>
    public void Save(string path, CancellationToken cancellationToken = default)
    {
        SafeTensorsFile.CheckLittleEndian();
        cancellationToken.ThrowIfCancellationRequested();
        AtomicFile.Write(path, stream => WriteTo(stream, cancellationToken));
    }

    /// <summary>Writes the file's bytes to a seekable stream at its current position (<see cref="Save"/>
    /// without the atomic rename).</summary>
    internal void WriteTo(Stream stream, CancellationToken cancellationToken)
    {
        var start = stream.Position;
        // The header has the same length with any checksum (64 hex digits): write it with a
        // placeholder, hash the data while writing it, then write the header again.
        var placeholder = Header(new string('0', 64));
        stream.Write(placeholder);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var entry in DataOrder())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (entry.Bytes is not null)
            {
                stream.Write(entry.Bytes);
                hash.AppendData(entry.Bytes);
                continue;
            }
            var tensor = entry.Tensor!;
            if (tensor.IsDisposed)
            {
                throw new ObjectDisposedException(nameof(Tensor), $"The tensor added as '{entry.Name}' was disposed before Save.");
            }
            TensorBytes.Read(tensor, chunk =>
            {
                stream.Write(chunk);
                hash.AppendData(chunk);
            }, cancellationToken);
        }
        var header = Header(Convert.ToHexStringLower(hash.GetHashAndReset()));
        if (header.Length != placeholder.Length)
        {
            throw new InvalidOperationException("The safetensors header changed length between its two writes.");
        }
        var end = stream.Position;
        stream.Position = start;
        stream.Write(header);
        stream.Position = end;
    }

    /// <summary>The length prefix and the padded JSON header, for the given checksum.</summary>
    private byte[] Header(string checksum)
    {
        var json = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(json, s_jsonOptions))
        {
            writer.WriteStartObject();
            writer.WriteStartObject(MetadataKey);
            var metadata = new SortedDictionary<string, string>(_metadata, StringComparer.Ordinal) { [ChecksumKey] = checksum };
            foreach (var (key, value) in metadata)
            {
                writer.WriteString(key, value);
            }
            writer.WriteEndObject();
            long offset = 0;
            foreach (var entry in DataOrder())
            {
                writer.WriteStartObject(entry.Name);
                writer.WriteString("dtype", entry.Dtype.ToSpecString());
                writer.WriteStartArray("shape");
                foreach (var dimension in entry.Shape)
                {
                    writer.WriteNumberValue(dimension);
                }
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + entry.ByteLength);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += entry.ByteLength;
            }
            writer.WriteEndObject();
        }
        var length = json.WrittenCount;
        var padded = (length + 7) / 8 * 8;
        var header = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)padded);
        json.WrittenSpan.CopyTo(header.AsSpan(8));
        header.AsSpan(8 + length).Fill((byte)' ');
        return header;
    }

    // Decreasing element size, stable: every tensor starts at a multiple of its element size.
    private IEnumerable<Entry> DataOrder() => _entries.OrderByDescending(e => e.Dtype.ElementSize());

    private void CheckName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
        {
            throw new ArgumentException("A tensor name must not be empty.", nameof(name));
        }
        if (name == MetadataKey)
        {
            throw new ArgumentException($"'{MetadataKey}' is reserved for the metadata map; pick another tensor name.", nameof(name));
        }
        if (_names.Contains(name))
        {
            throw new ArgumentException($"A tensor named '{name}' was already added.", nameof(name));
        }
    }

    private SafeTensorsWriter AddEntry(Entry entry)
    {
        _names.Add(entry.Name);
        _entries.Add(entry);
        return this;
    }

    private sealed record Entry(string Name, SafeTensorsDtype Dtype, long[] Shape, long ByteLength, Tensor? Tensor, byte[]? Bytes);
}
