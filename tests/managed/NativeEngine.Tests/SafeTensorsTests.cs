using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using NativeEngine.Checkpoints;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void TensorsOfEveryNativeDtypeAndHostSpansRoundTrip()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var path = _temp.File("round-trip.safetensors");
        float[] f32 = [1.5f, -2f, 3.25f, float.MaxValue, float.Epsilon, -0f];
        int[] i32 = [int.MinValue, -1, 0, int.MaxValue];
        sbyte[] i8 = [sbyte.MinValue, -1, 0, sbyte.MaxValue];
        Half[] f16 = [(Half)1.5f, Half.MaxValue, (Half)(-0.25f)];
        ushort[] bf16 = [0x3FC0, 0xC000];
        var scalar = Tensor.Create(context, Dtype.F32);
        scalar.Fill(42.5);
        var bf16Tensor = Tensor.Create(context, Dtype.Bf16, 2);
        bf16Tensor.CopyFrom<ushort>(bf16);

        new SafeTensorsWriter()
            .Add("f32", Tensor.FromArray<float>(context, f32, 2, 3))
            .Add("i32", Tensor.FromArray<int>(context, i32, 4))
            .Add("i8", Tensor.FromArray<sbyte>(context, i8, 2, 2))
            .Add("f16", Tensor.FromArray<Half>(context, f16, 3))
            .Add("bf16", bf16Tensor)
            .Add("scalar", scalar)
            .Add<double>("f64", [Math.PI, -1e300], [2])
            .Add<long>("i64 scalar", [long.MinValue], [])
            .Add<byte>("u8 empty", [], [0, 3])
            .Add<bool>("bool", [true, false, true], [3])
            .Add("raw bf16", SafeTensorsDtype.BF16, [1], [0x80, 0x3F])
            .Save(path, Ct);

        using var file = SafeTensorsFile.Open(path, SafeTensorsChecksum.Required);
        Assert.Equal(
            ["f64: F64 [2]", "i64 scalar: I64 []", "f32: F32 [2, 3]", "i32: I32 [4]", "scalar: F32 []",
             "f16: F16 [3]", "bf16: BF16 [2]", "raw bf16: BF16 [1]", "i8: I8 [2, 2]", "u8 empty: U8 [0, 3]", "bool: BOOL [3]"],
            file.Tensors.Select(t => t.ToString()));
        // Data order: by decreasing element size, so that every tensor is aligned to its element size.
        Assert.All(file.Tensors, t => Assert.Equal(0, (t.Begin + file.DataOffset) % SafeTensorsDtypes.ElementSize(t.Dtype)));
        Assert.Equal(f32, file.ReadArray<float>("f32"));
        Assert.Equal(i32, file.ReadArray<int>("i32"));
        Assert.Equal(i8, file.ReadArray<sbyte>("i8"));
        Assert.Equal(f16, file.ReadArray<Half>("f16"));
        Assert.Equal(bf16, file.ReadArray<ushort>("bf16"));
        Assert.Equal([42.5f], file.ReadArray<float>("scalar"));
        Assert.Equal([Math.PI, -1e300], file.ReadArray<double>("f64"));
        Assert.Equal([long.MinValue], file.ReadArray<long>("i64 scalar"));
        Assert.Empty(file.ReadArray<byte>("u8 empty"));
        Assert.Equal([true, false, true], file.ReadArray<bool>("bool"));
        Assert.Equal([0x80, 0x3F], file.ReadBytes("raw bf16"));

        using var loaded = file.ReadTensor(context, "f32");
        Assert.Equal([2L, 3], loaded.Shape);
        Assert.Equal(f32, loaded.ToArray<float>());
        using var loadedScalar = file.ReadTensor(context, "scalar");
        Assert.Equal(0, loadedScalar.Rank);
        Assert.Equal([42.5f], loadedScalar.ToArray<float>());
        using var loadedBf16 = file.ReadTensor(context, "bf16");
        Assert.Equal(Dtype.Bf16, loadedBf16.Dtype);
        Assert.Equal(bf16, loadedBf16.ToArray<ushort>());
    }

    [Fact]
    public void MetadataRoundTripsAndOnlyTheChecksumIsAddedWhenThereIsNone()
    {
        var withMetadata = _temp.File("meta.safetensors");
        var without = _temp.File("no-meta.safetensors");
        new SafeTensorsWriter().AddMetadata("format", "pt").AddMetadata("note", "héllo \"quoted\"").Add<float>("x", [1f], [1]).Save(withMetadata, Ct);
        new SafeTensorsWriter().Save(without, Ct);

        using (var file = SafeTensorsFile.Open(withMetadata))
        {
            Assert.Equal(["format", "note", "sha256"], file.Metadata.Keys.Order(StringComparer.Ordinal));
            Assert.Equal("héllo \"quoted\"", file.Metadata["note"]);
        }
        using (var file = SafeTensorsFile.Open(without))
        {
            Assert.Equal(["sha256"], file.Metadata.Keys);
            Assert.Empty(file.Tensors);
            // SHA-256 of no bytes.
            Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", file.Metadata["sha256"]);
        }
    }

    [Fact]
    public void TheFileIsByteForByteTheLayoutOfTheSpecification()
    {
        var path = _temp.File("exact.safetensors");
        new SafeTensorsWriter()
            .AddMetadata("format", "pt")
            .Add<float>("weight", [1.5f, -2f], [2, 1])
            .Add<sbyte>("bias", [1, -1, 3], [3])
            .Save(path, Ct);

        // Built by hand from the specification: u64 little-endian header length N, N bytes of JSON
        // (padded with spaces to a multiple of 8), then the data buffer, tensors in order.
        byte[] data = [0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x00, 0xC0, 0x01, 0xFF, 0x03];
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(data));
        var json = "{\"__metadata__\":{\"format\":\"pt\",\"sha256\":\"" + sha256 + "\"}," +
                   "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]}," +
                   "\"bias\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
        var header = Encoding.UTF8.GetBytes(json.PadRight((json.Length + 7) / 8 * 8));
        var expected = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(expected, (ulong)header.Length);
        header.CopyTo(expected, 8);
        data.CopyTo(expected, 8 + header.Length);

        Assert.Equal(expected, File.ReadAllBytes(path));
        Assert.Equal(0, (8 + header.Length) % 8);
    }

    [Fact]
    public void AFileOfAnotherToolWithoutMetadataOrChecksumIsRead()
    {
        // As other writers do: no __metadata__, keys in any order, no padding, data not in key order.
        var path = WriteRaw("other.safetensors",
            "{\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
            [0x00, 0x00, 0x80, 0x3F, 0x07, 0x00, 0x00, 0x00]);

        using var file = SafeTensorsFile.Open(path);

        Assert.Empty(file.Metadata);
        Assert.Equal(["a", "b"], file.Tensors.Select(t => t.Name));
        Assert.Equal([1f], file.ReadArray<float>("a"));
        Assert.Equal([7], file.ReadArray<int>("b"));
        var e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(path, SafeTensorsChecksum.Required));
        Assert.Contains("no checksum", e.Message);
    }

    [Fact]
    public void ALargeTensorIsWrittenAndReadInChunksAndIntoAStridedView()
    {
        using var context = Context.Create();
        var count = (16 << 20) / 4 * 2 + 123; // a little over two 16 MiB chunks of floats
        var values = new float[count];
        var random = new Random(7);
        for (var i = 0; i < count; i++)
        {
            values[i] = random.NextSingle();
        }
        var path = _temp.File("large.safetensors");
        using (var tensor = Tensor.FromArray<float>(context, values, count))
        {
            new SafeTensorsWriter().Add("big", tensor).Save(path, Ct);
        }

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(values, file.ReadArray<float>("big"));
        using var destination = Tensor.Create(context, Dtype.F32, count);
        file.ReadInto("big", destination, Ct);
        Assert.Equal(values, destination.ToArray<float>());
    }

    [Fact]
    public void ANonContiguousTensorIsWrittenAndReadInRowMajorOrder()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var path = _temp.File("strided.safetensors");
        var matrix = Tensor.FromArray<float>(context, [1, 2, 3, 4, 5, 6], 2, 3);
        var transposed = matrix.View(0, [3, 2], [1, 3]); // [[1,4],[2,5],[3,6]]

        new SafeTensorsWriter().Add("t", transposed).Save(path, Ct);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal([1f, 4, 2, 5, 3, 6], file.ReadArray<float>("t"));
        var target = Tensor.Create(context, Dtype.F32, 2, 3);
        file.ReadInto("t", target.View(0, [3, 2], [1, 3]), Ct);
        Assert.Equal([1f, 2, 3, 4, 5, 6], target.ToArray<float>());
    }

    [Fact]
    public void TheWriterRefusesBadNamesAndSizes()
    {
        var writer = new SafeTensorsWriter().Add<float>("x", [1f], [1]);

        Assert.Contains("already added", Assert.Throws<ArgumentException>(() => writer.Add<float>("x", [1f], [1])).Message);
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => writer.Add<float>("__metadata__", [1f], [1])).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => writer.Add<float>("", [1f], [1])).Message);
        Assert.Contains("needs 6 elements (24 bytes), got 20 bytes", Assert.Throws<ArgumentException>(() => writer.Add<float>("y", new float[5], [2, 3])).Message);
        Assert.Contains("negative", Assert.Throws<ArgumentException>(() => writer.Add<float>("y", [], [-1])).Message);
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => writer.AddMetadata("sha256", "x")).Message);
        Assert.Contains("stands for no safetensors dtype", Assert.Throws<ArgumentException>(() => writer.Add<decimal>("d", [1m], [1])).Message);
    }

    // ---- corruption: every case is a CheckpointException whose one-line message names the file ----

    [Theory]
    [InlineData(0, "truncated: the file has 0 bytes")]
    [InlineData(5, "truncated: the file has 5 bytes")]
    [InlineData(8, "truncated or not a safetensors file: the header length is")]
    [InlineData(40, "truncated or not a safetensors file: the header length is")]
    [InlineData(-1, "truncated (or data_offsets out of range): tensor 'b' ends at byte 26 of the data buffer but the file holds only 25")]
    [InlineData(-13, "truncated (or data_offsets out of range): tensor 'b'")]
    public void ATruncatedFileIsRefused(int keep, string expected)
    {
        var path = WriteGoodFile();
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(keep >= 0 ? keep : bytes.Length + keep)]);

        AssertRefused(path, expected);
    }

    [Fact]
    public void AHeaderLengthLargerThanTheFileIsRefused()
    {
        var path = WriteGoodFile();
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1UL << 40);
        File.WriteAllBytes(path, bytes);

        AssertRefused(path, $"the header length is {1UL << 40} bytes but only");
    }

    [Fact]
    public void AFlippedDataByteIsAChecksumMismatch()
    {
        var path = WriteGoodFile();
        var bytes = File.ReadAllBytes(path);
        bytes[^3] ^= 0x01;
        File.WriteAllBytes(path, bytes);

        AssertRefused(path, "checksum mismatch: the data's SHA-256 is");
        // Skipping the verification reads the (corrupt) data: the caller asked for it.
        using var file = SafeTensorsFile.Open(path, SafeTensorsChecksum.Skip);
        Assert.Equal(2, file.Tensors.Count);
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", "invalid JSON header")]
    [InlineData("not json at all", "invalid JSON header")]
    [InlineData("[1,2]", "the JSON is a Array, not an object")]
    [InlineData("{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype 'F128' of tensor 'a'")]
    [InlineData("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype 'f32'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "size mismatch of tensor 'a': shape [2] of F32 needs 8 bytes but data_offsets [0, 4] span 4")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", "ends before it begins")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "not a non-negative integer")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "has 1 entries, expected 2")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "has no \"data_offsets\" array")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", "unexpected or repeated field 'extra'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "the key 'a' appears twice")]
    [InlineData("{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "__metadata__ 'k' is a Number, not a string")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", "tensor 'b' [2, 6] overlaps tensor 'a' [0, 4]")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[6,8]}}", "a gap at bytes [4, 6) of the data buffer, before tensor 'b'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "trailing bytes after the last tensor")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", "truncated (or data_offsets out of range): tensor 'a' ends at byte 12")]
    [InlineData("{\"__metadata__\":{\"sha256\":\"abc\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "invalid checksum")]
    public void AnInvalidHeaderIsRefused(string json, string expected)
    {
        var path = WriteRaw("bad.safetensors", json, new byte[8]);

        AssertRefused(path, expected);
    }

    [Fact]
    public void AMissingFileIsACheckpointException() =>
        AssertRefused(_temp.File("nope.safetensors"), "the file does not exist");

    [Fact]
    public void LoadingByNameNamesWhatIsMissingOrDifferent()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var path = WriteGoodFile();
        using var file = SafeTensorsFile.Open(path);
        var destination = Tensor.Create(context, Dtype.F32, 3, 2);
        destination.Fill(9);

        var missing = Assert.Throws<CheckpointException>(() => file.ReadArray<float>("nope"));
        var shape = Assert.Throws<CheckpointException>(() => file.ReadInto("a", destination, Ct));
        var dtype = Assert.Throws<CheckpointException>(() => file.ReadInto("b", Tensor.Create(context, Dtype.F32, 2), Ct));
        var elementType = Assert.Throws<CheckpointException>(() => file.ReadArray<int>("a"));

        Assert.Equal($"{path}: missing tensor: no tensor named 'nope' (it has 'a', 'b')", missing.Message);
        Assert.Equal($"{path}: shape mismatch for tensor 'a': the file has [2, 3], the destination tensor has [3, 2]", shape.Message);
        Assert.Contains("dtype mismatch for tensor 'b': the file has I8, the destination tensor is F32", dtype.Message);
        Assert.Contains("the file has F32, which cannot be read as Int32", elementType.Message);
        Assert.All(destination.ToArray<float>(), v => Assert.Equal(9f, v));
    }

    [Fact]
    public void LoadingAModelChecksEveryTensorBeforeCopyingAny()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var path = WriteGoodFile();
        using var file = SafeTensorsFile.Open(path);
        var a = Tensor.Create(context, Dtype.F32, 2, 3);
        var b = Tensor.Create(context, Dtype.I8, 2);
        var wrongA = Tensor.Create(context, Dtype.F32, 6);
        b.Fill(-5);

        var mismatch = Assert.Throws<CheckpointException>(() =>
            file.ReadInto(new Dictionary<string, Tensor> { ["b"] = b, ["a"] = wrongA, ["c"] = a }, cancellationToken: Ct));
        var unused = Assert.Throws<CheckpointException>(() => file.ReadInto(new Dictionary<string, Tensor> { ["a"] = a }, cancellationToken: Ct));

        Assert.Equal($"{path}: shape mismatch for tensor 'a': the file has [2, 3], the destination tensor has [6] (and 1 more problems); nothing was loaded", mismatch.Message);
        Assert.Contains("unused tensor 'b' (nothing to load it into); nothing was loaded", unused.Message);
        Assert.All(b.ToArray<sbyte>(), v => Assert.Equal(-5, v));
        Assert.All(a.ToArray<float>(), v => Assert.Equal(0f, v));

        file.ReadInto(new Dictionary<string, Tensor> { ["a"] = a }, allowUnused: true, Ct);
        Assert.Equal([1f, 2, 3, 4, 5, 6], a.ToArray<float>());
        file.ReadInto(new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b }, cancellationToken: Ct);
        Assert.Equal([7, 8], b.ToArray<sbyte>());
    }

    [Fact]
    public void ReadTensorRefusesDtypesAndShapesThatNativeEngineLacks()
    {
        using var context = Context.Create();
        var path = _temp.File("other-dtypes.safetensors");
        new SafeTensorsWriter().Add<double>("f64", [1.0], [1]).Add<float>("empty", [], [2, 0]).Save(path, Ct);
        using var file = SafeTensorsFile.Open(path);

        Assert.Contains("F64, which has no NativeEngine dtype", Assert.Throws<CheckpointException>(() => file.ReadTensor(context, "f64")).Message);
        Assert.Contains("with a zero dimension", Assert.Throws<CheckpointException>(() => file.ReadTensor(context, "empty")).Message);
        Assert.Equal(0, context.GetMemoryStats().LiveTensors);
    }

    // ---- atomic save ----

    [Fact]
    public void ASaveThatFailsMidwayLeavesTheExistingFileAndNoTemporaryFile()
    {
        using var context = Context.Create();
        var path = WriteGoodFile();
        var original = File.ReadAllBytes(path);
        var disposed = Tensor.FromArray<float>(context, [1f, 2f], 2);
        var writer = new SafeTensorsWriter()
            .Add<float>("first", new float[100_000], [100_000]) // written to the temporary file before the failure
            .Add("second", disposed);
        disposed.Dispose();

        var e = Assert.Throws<ObjectDisposedException>(() => writer.Save(path, Ct));

        Assert.Contains("'second' was disposed", e.Message);
        Assert.Equal(original, File.ReadAllBytes(path));
        Assert.Equal(["good.safetensors"], _temp.Entries());
    }

    [Fact]
    public void AtomicFileDeletesItsTemporaryFileWhenTheWriterThrowsAfterCreatingIt()
    {
        var path = _temp.File("target.bin");
        File.WriteAllBytes(path, [1, 2, 3]);
        string[]? duringWrite = null;

        var e = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[1000]);
            stream.Flush();
            duringWrite = _temp.Entries();
            throw new InvalidOperationException("simulated failure");
        }));

        Assert.Equal("simulated failure", e.Message);
        Assert.NotNull(duringWrite);
        Assert.Contains(duringWrite, name => name.StartsWith(".target.bin.", StringComparison.Ordinal) && name.EndsWith(".tmp", StringComparison.Ordinal));
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        Assert.Equal(["target.bin"], _temp.Entries());
    }

    [Fact]
    public void ACanceledSaveLeavesTheExistingFile()
    {
        var path = WriteGoodFile();
        var original = File.ReadAllBytes(path);

        Assert.ThrowsAny<OperationCanceledException>(() =>
            new SafeTensorsWriter().Add<float>("x", [1f], [1]).Save(path, new CancellationToken(canceled: true)));

        Assert.Equal(original, File.ReadAllBytes(path));
        Assert.Equal(["good.safetensors"], _temp.Entries());
    }

    [Fact]
    public void SavingIntoAMissingFolderIsAClearError()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => new SafeTensorsWriter().Save(_temp.File("missing", "x.safetensors"), Ct));

        Assert.Contains("does not exist", e.Message);
    }

    /// <summary>A valid file: "a" F32 [2, 3] (24 bytes) then "b" I8 [2] (2 bytes), with a checksum.</summary>
    private string WriteGoodFile()
    {
        var path = _temp.File("good.safetensors");
        new SafeTensorsWriter()
            .Add<float>("a", [1, 2, 3, 4, 5, 6], [2, 3])
            .Add<sbyte>("b", [7, 8], [2])
            .Save(path, Ct);
        return path;
    }

    private string WriteRaw(string name, string json, byte[] data)
    {
        var path = _temp.File(name);
        var header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void AssertRefused(string path, string expected)
    {
        var e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.StartsWith($"{path}: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(path, e.Path);
    }
}
