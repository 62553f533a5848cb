using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace NativeEngine.Checkpoints;

/// <summary>
/// A safetensors file open for reading (https://github.com/huggingface/safetensors): its metadata, the
/// descriptions of its tensors, and their data on demand. <see cref="Open"/> validates the whole
/// file before anything is read from it.
/// </summary>
/// <remarks>
/// <para>Validation (each failure is a <see cref="CheckpointException"/> naming the file and the
/// problem): the file holds the 8-byte header length and that many header bytes (at most 100 MB);
/// the header is a JSON object whose <c>"__metadata__"</c> maps strings to strings and whose other
/// keys are tensors with exactly <c>"dtype"</c> (a known <see cref="SafeTensorsDtype"/>), <c>"shape"</c>
/// (non-negative integers) and <c>"data_offsets"</c> (<c>[begin, end]</c>, begin &lt;= end); the byte
/// count of each tensor's shape and dtype equals its offsets' span; the offsets, sorted, cover the data
/// buffer from its first to its last byte without gaps or overlaps (so a file cut short, or with bytes
/// beyond the last tensor, is refused); and the data's SHA-256 matches <c>__metadata__["sha256"]</c>
/// (see <see cref="SafeTensorsChecksum"/>).</para>
/// <para>Reading: the file stays open (shared for reading) until <see cref="Dispose"/>. Each read goes
/// from the file straight into its destination: into the returned array
/// (<see cref="ReadArray{T}"/>), or through a buffer of at most 16 MiB into a tensor
/// (<see cref="ReadInto(string, Tensor, CancellationToken)"/>), so nothing is held in memory twice. Verifying the checksum reads the
/// data once more, streaming, with a 1 MiB buffer.</para>
/// <para>Threading: the reading methods may run on several threads at once (positional reads);
/// dispose only once they have returned. Tensors follow their context's threading rules.</para>
/// </remarks>
public sealed class SafeTensorsFile : IDisposable
{
    /// <summary>The largest header accepted, as the reference implementation: 100 MB.</summary>
    public const long MaxHeaderLength = 100_000_000;

    private readonly SafeFileHandle _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private int _disposed;

    private SafeTensorsFile(string path, SafeFileHandle handle, long dataStart, IReadOnlyDictionary<string, string> metadata,
        SafeTensorInfo[] tensors)
    {
        Path = path;
        _handle = handle;
        _dataStart = dataStart;
        Metadata = metadata;
        Tensors = Array.AsReadOnly(tensors);
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The full path of the file.</summary>
    public string Path { get; }

    /// <summary>Where the data buffer starts in the file: 8 + the header length. Tensor offsets
    /// (<see cref="SafeTensorInfo.Begin"/>) are relative to it.</summary>
    public long DataOffset => _dataStart;

    /// <summary>The <c>__metadata__</c> map (empty when the file has none), the checksum included.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensors, in the order of their data in the file.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="checksum">Whether to verify the data checksum (default: when the file has one).</param>
    /// <returns>The open file. Ownership: the caller must dispose it.</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    /// <exception cref="CheckpointException">The file does not exist, or fails validation (see the remarks).</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static SafeTensorsFile Open(string path, SafeTensorsChecksum checksum = SafeTensorsChecksum.VerifyIfPresent)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        CheckLittleEndian();
        var fullPath = System.IO.Path.GetFullPath(path);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException(fullPath, "the file does not exist", e);
        }
        try
        {
            var (dataStart, metadata, tensors) = ReadHeader(fullPath, handle);
            var file = new SafeTensorsFile(fullPath, handle, dataStart, metadata, tensors);
            if (checksum != SafeTensorsChecksum.Skip)
            {
                file.VerifyChecksum(required: checksum == SafeTensorsChecksum.Required);
            }
            return file;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file has a tensor named <paramref name="name"/>.</summary>
    /// <param name="name">The name.</param>
    /// <returns>Whether it exists.</returns>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The description of the tensor named <paramref name="name"/>.</summary>
    /// <param name="name">The name.</param>
    /// <returns>Its dtype, shape and offsets.</returns>
    /// <exception cref="CheckpointException">The file has no such tensor; the message lists some it has.</exception>
    public SafeTensorInfo GetInfo(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_byName.TryGetValue(name, out var info))
        {
            return info;
        }
        var names = Tensors.Take(8).Select(t => $"'{t.Name}'").ToList();
        var listed = names.Count == 0 ? "it has no tensors"
            : $"it has {string.Join(", ", names)}{(Tensors.Count > names.Count ? $" and {Tensors.Count - names.Count} more" : "")}";
        throw Error($"missing tensor: no tensor named '{name}' ({listed})");
    }

    /// <summary>Reads a tensor's raw bytes (row-major, little-endian).</summary>
    /// <param name="name">The tensor's name.</param>
    /// <returns>A new array of <see cref="SafeTensorInfo.ByteLength"/> bytes.</returns>
    /// <exception cref="CheckpointException">No such tensor, it is too large for an array, or the file
    /// was cut short since it was opened.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public byte[] ReadBytes(string name) => ReadElements<byte>(name, anyDtype: true);

    /// <summary>Reads a tensor's elements into a new array.</summary>
    /// <typeparam name="T">An element type that matches the tensor's dtype (see
    /// <see cref="SafeTensorsDtypes.Matches{T}"/>: float for F32, Half or ushort for F16, ushort for BF16, ...).</typeparam>
    /// <param name="name">The tensor's name.</param>
    /// <returns>A new array of <see cref="SafeTensorInfo.ElementCount"/> elements, row-major.</returns>
    /// <exception cref="CheckpointException">No such tensor, its dtype does not match <typeparamref name="T"/>,
    /// it is too large for an array, or the file was cut short since it was opened.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public T[] ReadArray<T>(string name) where T : unmanaged => ReadElements<T>(name, anyDtype: false);

    /// <summary>Copies a tensor of the file into an existing tensor of the same shape and dtype (such as
    /// a model's parameter), in chunks of at most 16 MiB.</summary>
    /// <param name="name">The tensor's name in the file.</param>
    /// <param name="destination">The tensor to fill; any context, contiguous or not.</param>
    /// <param name="cancellationToken">Checked between chunks.</param>
    /// <exception cref="ArgumentNullException"><paramref name="destination"/> is null.</exception>
    /// <exception cref="CheckpointException">No such tensor, or its dtype or shape differs from the destination's
    /// (the destination is then untouched), or the file was cut short since it was opened.</exception>
    /// <exception cref="ObjectDisposedException">The file or the tensor was disposed.</exception>
    public void ReadInto(string name, Tensor destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var info = GetInfo(name);
        if (info.Dtype.ToDtype() != destination.Dtype)
        {
            throw Error($"dtype mismatch for tensor '{name}': the file has {info.Dtype.ToSpecString()}, the destination tensor is {destination.Dtype}");
        }
        if (!info.Shape.SequenceEqual(destination.Shape))
        {
            throw Error($"shape mismatch for tensor '{name}': the file has {SafeTensorInfo.FormatShape(info.Shape)}, " +
                $"the destination tensor has {SafeTensorInfo.FormatShape(destination.Shape)}");
        }
        var position = _dataStart + info.Begin;
        TensorBytes.Write(destination, chunk =>
        {
            ReadExactly(chunk, position);
            position += chunk.Length;
        }, cancellationToken);
    }

    /// <summary>Copies several tensors of the file into existing tensors (such as every parameter of a model),
    /// after checking all of them first: a missing tensor, a dtype or shape mismatch, or (unless
    /// <paramref name="allowUnused"/>) a tensor of the file that no destination takes, throws before anything
    /// is copied, so a model is never left half loaded by a checkpoint that does not match it.</summary>
    /// <param name="destinations">The tensors to fill, by name in the file.</param>
    /// <param name="allowUnused">Whether the file may hold tensors that are not in <paramref name="destinations"/>.</param>
    /// <param name="cancellationToken">Checked between tensors and chunks; a cancellation leaves the tensors
    /// copied so far as they are.</param>
    /// <exception cref="ArgumentNullException"><paramref name="destinations"/> or one of its tensors is null.</exception>
    /// <exception cref="CheckpointException">The file does not match the destinations (the message names the
    /// first problem and how many there are); nothing was copied. Or the file was cut short since it was opened.</exception>
    /// <exception cref="ObjectDisposedException">The file or a tensor was disposed.</exception>
    public void ReadInto(IReadOnlyDictionary<string, Tensor> destinations, bool allowUnused = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destinations);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var problems = new List<string>();
        foreach (var (name, destination) in destinations)
        {
            ArgumentNullException.ThrowIfNull(destination, $"destinations[\"{name}\"]");
            if (!_byName.TryGetValue(name, out var info))
            {
                problems.Add($"missing tensor '{name}'");
            }
            else if (info.Dtype.ToDtype() != destination.Dtype)
            {
                problems.Add($"dtype mismatch for tensor '{name}': the file has {info.Dtype.ToSpecString()}, the destination tensor is {destination.Dtype}");
            }
            else if (!info.Shape.SequenceEqual(destination.Shape))
            {
                problems.Add($"shape mismatch for tensor '{name}': the file has {SafeTensorInfo.FormatShape(info.Shape)}, " +
                    $"the destination tensor has {SafeTensorInfo.FormatShape(destination.Shape)}");
            }
        }
        if (!allowUnused)
        {
            problems.AddRange(Tensors.Where(t => !destinations.ContainsKey(t.Name)).Select(t => $"unused tensor '{t.Name}' (nothing to load it into)"));
        }
        if (problems.Count > 0)
        {
            throw Error($"{problems[0]}{(problems.Count > 1 ? $" (and {problems.Count - 1} more problems)" : "")}; nothing was loaded");
        }
        foreach (var (name, destination) in destinations)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ReadInto(name, destination, cancellationToken);
        }
    }

    /// <summary>Reads a tensor of the file into a new NativeEngine tensor.</summary>
    /// <param name="context">The context that owns the new tensor.</param>
    /// <param name="name">The tensor's name in the file.</param>
    /// <returns>A new contiguous tensor. Ownership: the caller owns it and must dispose it (or the current
    /// <see cref="TensorScope"/> does).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="context"/> is null.</exception>
    /// <exception cref="CheckpointException">No such tensor; its dtype has no NativeEngine dtype (only F32, F16,
    /// BF16, I8 and I32 do); it has a zero dimension (NativeEngine tensors have none); or the file was cut
    /// short since it was opened.</exception>
    /// <exception cref="ObjectDisposedException">The file or the context was disposed.</exception>
    /// <exception cref="NativeEngineException">The library refused the shape (such as a rank above its maximum)
    /// or is out of memory.</exception>
    public Tensor ReadTensor(Context context, string name)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var info = GetInfo(name);
        var dtype = info.Dtype.ToDtype() ?? throw Error(
            $"tensor '{name}' is {info.Dtype.ToSpecString()}, which has no NativeEngine dtype (F32, F16, BF16, I8 and I32 do); read it with ReadArray");
        if (info.ElementCount == 0)
        {
            throw Error($"tensor '{name}' has shape {SafeTensorInfo.FormatShape(info.Shape)} with a zero dimension, which a NativeEngine tensor cannot have");
        }
        var tensor = Tensor.Create(context, dtype, [.. info.Shape]);
        try
        {
            ReadInto(name, tensor);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Closes the file. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _handle.Dispose();
        }
    }

    /// <summary>Describes the file, such as <c>SafeTensorsFile(/runs/a/model.safetensors, 12 tensors)</c>.</summary>
    /// <returns>The description.</returns>
    public override string ToString() => $"SafeTensorsFile({Path}, {Tensors.Count} tensors)";

    internal static void CheckLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Safetensors files are little-endian; this machine is big-endian.");
        }
    }

    private T[] ReadElements<T>(string name, bool anyDtype) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var info = GetInfo(name);
        if (!anyDtype && !SafeTensorsDtypes.Matches<T>(info.Dtype))
        {
            throw Error($"dtype mismatch for tensor '{name}': the file has {info.Dtype.ToSpecString()}, which cannot be read as {typeof(T).Name}");
        }
        var elementSize = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        var count = info.ByteLength / elementSize;
        if (count > Array.MaxLength)
        {
            throw Error($"tensor '{name}' has {count} elements, more than an array can hold; read it into a tensor with ReadInto");
        }
        var result = GC.AllocateUninitializedArray<T>((int)count);
        ReadExactly(MemoryMarshal.AsBytes(result.AsSpan()), _dataStart + info.Begin);
        return result;
    }

    private void ReadExactly(Span<byte> destination, long position)
    {
        while (!destination.IsEmpty)
        {
            var read = RandomAccess.Read(_handle, destination, position);
            if (read == 0)
            {
                throw Error($"truncated: the file ended at byte {position} while reading (it was cut short after it was opened)");
            }
            destination = destination[read..];
            position += read;
        }
    }

    private void VerifyChecksum(bool required)
    {
        if (!Metadata.TryGetValue(SafeTensorsWriter.ChecksumKey, out var expected))
        {
            if (required)
            {
                throw Error($"no checksum: the header has no __metadata__ entry '{SafeTensorsWriter.ChecksumKey}', and one is required");
            }
            return;
        }
        if (expected.Length != 64 || !expected.All(char.IsAsciiHexDigit))
        {
            throw Error($"invalid checksum: __metadata__ '{SafeTensorsWriter.ChecksumKey}' is '{Truncate(expected)}', not 64 hexadecimal digits");
        }
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            var length = RandomAccess.GetLength(_handle);
            for (var position = _dataStart; position < length;)
            {
                var chunk = buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - position));
                ReadExactly(chunk, position);
                hash.AppendData(chunk);
                position += chunk.Length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
        {
            throw Error($"checksum mismatch: the data's SHA-256 is {actual} but the header records {expected.ToLowerInvariant()}; the file is corrupt");
        }
    }

    private CheckpointException Error(string problem) => new(Path, problem);

    private static (long DataStart, IReadOnlyDictionary<string, string> Metadata, SafeTensorInfo[] Tensors) ReadHeader(string path, SafeFileHandle handle)
    {
        var fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
        {
            throw new CheckpointException(path, $"truncated: the file has {fileLength} bytes, fewer than the 8 of the header length");
        }
        Span<byte> prefix = stackalloc byte[8];
        ReadAll(path, handle, prefix, 0);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)(fileLength - 8))
        {
            throw new CheckpointException(path,
                $"truncated or not a safetensors file: the header length is {headerLength} bytes but only {fileLength - 8} bytes follow it");
        }
        if (headerLength > MaxHeaderLength)
        {
            throw new CheckpointException(path, $"the header length {headerLength} exceeds the limit of {MaxHeaderLength} bytes");
        }
        var header = new byte[headerLength];
        ReadAll(path, handle, header, 8);
        var dataStart = 8 + (long)headerLength;
        var bufferLength = fileLength - dataStart;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, $"invalid JSON header: {OneLine(e.Message)}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException(path, $"invalid header: the JSON is a {root.ValueKind}, not an object");
            }
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var tensors = new List<SafeTensorInfo>();
            var keys = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (!keys.Add(property.Name))
                {
                    throw new CheckpointException(path, $"invalid header: the key '{Truncate(property.Name)}' appears twice");
                }
                if (property.Name == SafeTensorsWriter.MetadataKey)
                {
                    ReadMetadata(path, property.Value, metadata);
                }
                else
                {
                    tensors.Add(ReadTensorInfo(path, property.Name, property.Value));
                }
            }
            var sorted = tensors.OrderBy(t => t.Begin).ThenBy(t => t.End).ToArray();
            CheckCoverage(path, sorted, bufferLength);
            return (dataStart, metadata, sorted);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointException(path, $"invalid header: __metadata__ is a {value.ValueKind}, not an object of strings");
        }
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw new CheckpointException(path, $"invalid header: __metadata__ '{Truncate(entry.Name)}' is a {entry.Value.ValueKind}, not a string");
            }
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
            {
                throw new CheckpointException(path, $"invalid header: __metadata__ has the key '{Truncate(entry.Name)}' twice");
            }
        }
    }

    private static SafeTensorInfo ReadTensorInfo(string path, string name, JsonElement value)
    {
        var what = $"tensor '{Truncate(name)}'";
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointException(path, $"invalid header: {what} is a {value.ValueKind}, not an object");
        }
        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype" when dtypeElement is null:
                    dtypeElement = field.Value;
                    break;
                case "shape" when shapeElement is null:
                    shapeElement = field.Value;
                    break;
                case "data_offsets" when offsetsElement is null:
                    offsetsElement = field.Value;
                    break;
                default:
                    throw new CheckpointException(path, $"invalid header: {what} has an unexpected or repeated field '{Truncate(field.Name)}'");
            }
        }
        if (dtypeElement is not { ValueKind: JsonValueKind.String } dtypeValue)
        {
            throw new CheckpointException(path, $"invalid header: {what} has no \"dtype\" string");
        }
        var dtypeText = dtypeValue.GetString();
        if (!SafeTensorsDtypes.TryParse(dtypeText, out var dtype))
        {
            throw new CheckpointException(path, $"unknown dtype '{Truncate(dtypeText ?? "")}' of {what}");
        }
        var shape = ReadIntegers(path, what, "shape", shapeElement, count: null);
        var offsets = ReadIntegers(path, what, "data_offsets", offsetsElement, count: 2);
        var (begin, end) = (offsets[0], offsets[1]);
        if (begin > end)
        {
            throw new CheckpointException(path, $"invalid data_offsets of {what}: [{begin}, {end}] ends before it begins");
        }
        long bytes = dtype.ElementSize();
        foreach (var dimension in shape)
        {
            if (dimension == 0 || bytes == 0)
            {
                bytes = 0;
            }
            else if (bytes > long.MaxValue / dimension)
            {
                throw new CheckpointException(path, $"{what} has shape {SafeTensorInfo.FormatShape(shape)}, too large");
            }
            else
            {
                bytes *= dimension;
            }
        }
        if (bytes != end - begin)
        {
            throw new CheckpointException(path,
                $"size mismatch of {what}: shape {SafeTensorInfo.FormatShape(shape)} of {dtype.ToSpecString()} needs {bytes} bytes " +
                $"but data_offsets [{begin}, {end}] span {end - begin}");
        }
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static long[] ReadIntegers(string path, string what, string field, JsonElement? element, int? count)
    {
        if (element is not { ValueKind: JsonValueKind.Array } array)
        {
            throw new CheckpointException(path, $"invalid header: {what} has no \"{field}\" array");
        }
        var values = new List<long>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var value) || value < 0)
            {
                throw new CheckpointException(path, $"invalid header: \"{field}\" of {what} holds {Truncate(item.GetRawText())}, not a non-negative integer");
            }
            values.Add(value);
        }
        if (count is { } expected && values.Count != expected)
        {
            throw new CheckpointException(path, $"invalid header: \"{field}\" of {what} has {values.Count} entries, expected {expected}");
        }
        return [.. values];
    }

    private static void CheckCoverage(string path, SafeTensorInfo[] sorted, long bufferLength)
    {
        var last = sorted.Length == 0 ? null : sorted.MaxBy(t => t.End);
        if (last is not null && last.End > bufferLength)
        {
            throw new CheckpointException(path,
                $"truncated (or data_offsets out of range): tensor '{Truncate(last.Name)}' ends at byte {last.End} of the data buffer " +
                $"but the file holds only {bufferLength} data bytes");
        }
        long expected = 0;
        SafeTensorInfo? previous = null;
        foreach (var tensor in sorted)
        {
            if (tensor.Begin > expected)
            {
                throw new CheckpointException(path,
                    $"invalid data_offsets: a gap at bytes [{expected}, {tensor.Begin}) of the data buffer, before tensor '{Truncate(tensor.Name)}'");
            }
            if (tensor.Begin < expected)
            {
                throw new CheckpointException(path,
                    $"invalid data_offsets: tensor '{Truncate(tensor.Name)}' [{tensor.Begin}, {tensor.End}] overlaps tensor '{Truncate(previous!.Name)}' [{previous.Begin}, {previous.End}]");
            }
            expected = tensor.End;
            if (tensor.End > tensor.Begin)
            {
                previous = tensor;
            }
        }
        if (expected < bufferLength)
        {
            throw new CheckpointException(path,
                $"invalid data_offsets: the data buffer has {bufferLength} bytes but the tensors cover only {expected} (trailing bytes after the last tensor)");
        }
    }

    private static void ReadAll(string path, SafeFileHandle handle, Span<byte> destination, long position)
    {
        while (!destination.IsEmpty)
        {
            var read = RandomAccess.Read(handle, destination, position);
            if (read == 0)
            {
                throw new CheckpointException(path, $"truncated: the file ended at byte {position} while reading the header");
            }
            destination = destination[read..];
            position += read;
        }
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");

    private static string Truncate(string text) => OneLine(text.Length <= 80 ? text : text[..80] + "...");
}
