using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using NativeEngine.Checkpoints;
using NativeEngine.Tests.Support;
using NativeEngine.Tokenizers;

namespace NativeEngine.Tests;

public sealed class CheckpointDirectoryTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly Context _context = Context.Create();
    private readonly string _path;

    public CheckpointDirectoryTests() => _path = _temp.File("run", "checkpoint");

    public void Dispose()
    {
        _context.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void SaveThenLoadRoundTripsEveryFile()
    {
        using var scope = new TensorScope();
        var weight = Tensor.FromArray<float>(_context, [1, 2, 3, 4, 5, 6], 2, 3);
        var bias = Tensor.FromArray<float>(_context, [0.5f, -0.5f], 2);
        var moment = Tensor.FromArray<float>(_context, [0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f], 2, 3);
        var contents = new CheckpointContents
        {
            Config = new JsonObject { ["tokenizer"] = "byte", ["d_model"] = 64, ["name"] = "tiny ✓" },
            TrainerState = new JsonObject { ["step"] = 1200, ["seed"] = 42, ["lr"] = 3e-4 },
            Optimizer = new SafeTensorsWriter().Add("weight.m", moment),
        };
        contents.Model.Add("weight", weight).Add("bias", bias);

        CheckpointDirectory.Save(_path, contents, Ct);

        Assert.Equal(["config.json", "manifest.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"], _temp.Entries(_path));
        Assert.Equal(["checkpoint"], _temp.Entries(_temp.File("run")));
        Assert.True(CheckpointDirectory.Exists(_path));
        using var loaded = CheckpointDirectory.Load(_path);
        Assert.Equal(_path, loaded.Path);
        Assert.False(loaded.IsRecovered);
        Assert.Equal(64, loaded.Config["d_model"]!.GetValue<int>());
        Assert.Equal("tiny ✓", loaded.Config["name"]!.GetValue<string>());
        Assert.Equal(1200, loaded.TrainerState["step"]!.GetValue<long>());
        Assert.Equal(3e-4, loaded.TrainerState["lr"]!.GetValue<double>());
        Assert.Same(ByteTokenizer.Instance, loaded.CreateTokenizer());
        var restored = Tensor.Create(_context, Dtype.F32, 2, 3);
        loaded.Model.ReadInto("weight", restored, Ct);
        Assert.Equal(weight.ToArray<float>(), restored.ToArray<float>());
        Assert.Equal([0.5f, -0.5f], loaded.Model.ReadArray<float>("bias"));
        Assert.Equal(moment.ToArray<float>(), loaded.Optimizer!.ReadArray<float>("weight.m"));

        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(_path, "manifest.json")))!;
        Assert.Equal("nativeengine-checkpoint", manifest["format"]!.GetValue<string>());
        Assert.Equal(1, manifest["version"]!.GetValue<int>());
        Assert.Equal(new FileInfo(Path.Combine(_path, "model.safetensors")).Length, manifest["files"]!["model.safetensors"]!["size"]!.GetValue<long>());
    }

    [Fact]
    public void ACheckpointWithoutOptimizerLoadsWithNone()
    {
        Save(step: 1);

        using var loaded = CheckpointDirectory.Load(_path);

        Assert.Null(loaded.Optimizer);
        Assert.DoesNotContain("optimizer.safetensors", _temp.Entries(_path));
    }

    [Fact]
    public void ASecondSaveReplacesTheFirstAndLeavesNothingBehind()
    {
        Save(step: 1);
        Save(step: 2);

        Assert.Equal(2, LoadedStep());
        Assert.Equal(["checkpoint"], _temp.Entries(_temp.File("run")));
    }

    [Fact]
    public void AnExceptionMidwayLeavesTheLastGoodCheckpointAndNoStagingDirectory()
    {
        Save(step: 1);
        var before = Snapshot();
        var disposed = Tensor.FromArray<float>(_context, [1f], 1);
        var contents = Contents(step: 2);
        contents.Optimizer = new SafeTensorsWriter().Add("m", disposed); // written after model.safetensors
        disposed.Dispose();

        Assert.Throws<ObjectDisposedException>(() => CheckpointDirectory.Save(_path, contents, Ct));

        Assert.Equal(before, Snapshot());
        Assert.Equal(1, LoadedStep());
        Assert.Equal(["checkpoint"], _temp.Entries(_temp.File("run")));
    }

    [Fact]
    public void ACancellationMidwayLeavesTheLastGoodCheckpointAndNoStagingDirectory()
    {
        Save(step: 1);
        var before = Snapshot();
        using var cancellation = new CancellationTokenSource();
        var contents = Contents(step: 2);
        // Cancels while config.json is being written, after model.safetensors.
        contents.Config["cancel"] = JsonValue.Create(new CancelMarker(), CancelConverter.TypeInfo(cancellation));
        var wasWritten = false;
        contents.Config["probe"] = JsonValue.Create(new CancelMarker(), ProbeConverter.TypeInfo(() =>
            wasWritten = File.Exists(Path.Combine(CheckpointDirectory.StagingPath(_path), "model.safetensors"))));

        Assert.ThrowsAny<OperationCanceledException>(() => CheckpointDirectory.Save(_path, contents, cancellation.Token));

        Assert.True(wasWritten, "the cancellation was expected after model.safetensors was staged");
        Assert.Equal(before, Snapshot());
        Assert.Equal(1, LoadedStep());
        Assert.Equal(["checkpoint"], _temp.Entries(_temp.File("run")));
    }

    [Fact]
    public void AKillWhileStagingLeavesTheTargetLoadableAndTheNextSaveCleansUp()
    {
        Save(step: 1);
        // What a kill during step 3 leaves: a partial staging directory.
        var staging = CheckpointDirectory.StagingPath(_path);
        Directory.CreateDirectory(staging);
        File.WriteAllBytes(Path.Combine(staging, "model.safetensors"), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(staging, ".config.json.0123456789abcdef0123456789abcdef.tmp"), [4]);

        Assert.Equal(1, LoadedStep());
        Save(step: 2);

        Assert.Equal(2, LoadedStep());
        Assert.Equal(["checkpoint"], _temp.Entries(_temp.File("run")));
    }

    [Fact]
    public void AKillBetweenTheRenamesIsRecoveredFromTheBackup()
    {
        Save(step: 1);
        // What a kill between the two renames of step 4 leaves: the old checkpoint in the backup, no target,
        // and a complete staging directory.
        Directory.Move(_path, CheckpointDirectory.BackupPath(_path));
        Save(step: 9, path: _temp.File("elsewhere"));
        Directory.Move(_temp.File("elsewhere"), CheckpointDirectory.StagingPath(_path));

        Assert.True(CheckpointDirectory.Exists(_path));
        using (var loaded = CheckpointDirectory.Load(_path))
        {
            Assert.True(loaded.IsRecovered);
            Assert.Equal(CheckpointDirectory.BackupPath(_path), loaded.Path);
            Assert.Equal(1, loaded.TrainerState["step"]!.GetValue<int>());
        }
        Save(step: 2);

        Assert.Equal(2, LoadedStep());
        Assert.Equal(["checkpoint"], _temp.Entries(_temp.File("run")));
    }

    [Fact]
    public void AKillAfterTheSwapLeavesTheNewCheckpointAndTheNextSaveDeletesTheBackup()
    {
        Save(step: 1);
        Save(step: 2, path: _temp.File("old"));
        Directory.Move(_temp.File("old"), CheckpointDirectory.BackupPath(_path));

        Assert.Equal(1, LoadedStep());
        Save(step: 3);

        Assert.Equal(3, LoadedStep());
        Assert.Equal(["checkpoint"], _temp.Entries(_temp.File("run")));
    }

    [Fact]
    public void ADirectoryThatIsNotACheckpointIsNeverReplaced()
    {
        Directory.CreateDirectory(_path);
        var mine = Path.Combine(_path, "notes.txt");
        File.WriteAllText(mine, "my notes");

        var e = Assert.Throws<CheckpointException>(() => Save(step: 1));

        Assert.Contains("is not a NativeEngine checkpoint", e.Message);
        Assert.Equal("my notes", File.ReadAllText(mine));
        Assert.Equal(["checkpoint"], _temp.Entries(_temp.File("run")));
    }

    [Fact]
    public void ACheckpointHoldingAForeignFileIsNeverReplaced()
    {
        Save(step: 1);
        var mine = Path.Combine(_path, "notes.txt");
        File.WriteAllText(mine, "my notes");

        var e = Assert.Throws<CheckpointException>(() => Save(step: 2));

        Assert.Contains("contains 'notes.txt', which NativeEngine did not write", e.Message);
        Assert.Equal("my notes", File.ReadAllText(mine));
        Assert.Equal(1, LoadedStep());
    }

    [Fact]
    public void AFileAtTheTargetPathIsNeverReplaced()
    {
        Directory.CreateDirectory(_temp.File("run"));
        File.WriteAllText(_path, "a file");

        Assert.Contains("is a file", Assert.Throws<CheckpointException>(() => Save(step: 1)).Message);
        Assert.Equal("a file", File.ReadAllText(_path));
    }

    [Fact]
    public void AnEmptyDirectoryIsUsedAsTheTarget()
    {
        Directory.CreateDirectory(_path);

        Save(step: 5);

        Assert.Equal(5, LoadedStep());
    }

    [Fact]
    public void AForeignFileInALeftoverStagingDirectoryStopsTheSaveAndIsKept()
    {
        Save(step: 1);
        var staging = CheckpointDirectory.StagingPath(_path);
        Directory.CreateDirectory(staging);
        File.WriteAllText(Path.Combine(staging, "mine.txt"), "keep");

        Assert.Contains("contains 'mine.txt'", Assert.Throws<CheckpointException>(() => Save(step: 2)).Message);
        Assert.Equal("keep", File.ReadAllText(Path.Combine(staging, "mine.txt")));
        Assert.Equal(1, LoadedStep());
    }

    // ---- corrupt checkpoints: CheckpointException, and nothing is touched ----

    public static TheoryData<string, string, string> Corruptions => new()
    {
        { "truncate", "model.safetensors", "truncated: the file has" },
        { "flip", "model.safetensors", "checksum mismatch: the file's SHA-256 is" },
        { "flip", "config.json", "checksum mismatch" },
        { "delete", "trainer_state.json", "missing file: manifest.json lists it" },
        { "delete", "manifest.json", "not a checkpoint: there is no manifest.json" },
        { "garbage", "manifest.json", "invalid JSON" },
        { "append", "optimizer.safetensors", "size mismatch: the file has" },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void LoadingACorruptCheckpointThrowsAndTouchesNothing(string damage, string file, string expected)
    {
        Save(step: 1, withOptimizer: true);
        var target = Path.Combine(_path, file);
        switch (damage)
        {
            case "truncate":
                File.WriteAllBytes(target, File.ReadAllBytes(target)[..^5]);
                break;
            case "flip":
                var bytes = File.ReadAllBytes(target);
                bytes[^2] ^= 0x20;
                File.WriteAllBytes(target, bytes);
                break;
            case "delete":
                File.Delete(target);
                break;
            case "garbage":
                File.WriteAllText(target, "{ not json");
                break;
            case "append":
                File.AppendAllText(target, "x");
                break;
        }
        var before = Snapshot();

        var e = Assert.Throws<CheckpointException>(() => CheckpointDirectory.Load(_path).Dispose());

        Assert.Contains(expected, e.Message);
        Assert.StartsWith(file == "manifest.json" && damage == "delete" ? _path : target, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(before, Snapshot());
    }

    [Fact]
    public void LoadingAMissingCheckpointNamesTheDirectory()
    {
        var e = Assert.Throws<CheckpointException>(() => CheckpointDirectory.Load(_path));

        Assert.Equal($"{_path}: no checkpoint: the directory does not exist", e.Message);
        Assert.False(CheckpointDirectory.Exists(_path));
    }

    [Fact]
    public void AnUnknownOrMissingTokenizerNameIsACheckpointException()
    {
        var contents = Contents(step: 1);
        contents.Config["tokenizer"] = "sentencepiece";
        CheckpointDirectory.Save(_path, contents, Ct);
        using (var loaded = CheckpointDirectory.Load(_path))
        {
            var e = Assert.Throws<CheckpointException>(loaded.CreateTokenizer);
            Assert.Contains("unknown tokenizer 'sentencepiece' (known: byte, cl100k)", e.Message);
            Assert.StartsWith(Path.Combine(_path, "config.json"), e.Message, StringComparison.Ordinal);
        }
        contents.Config.Remove("tokenizer");
        CheckpointDirectory.Save(_path, contents, Ct);
        using (var loaded = CheckpointDirectory.Load(_path))
        {
            Assert.Contains("no tokenizer", Assert.Throws<CheckpointException>(loaded.CreateTokenizer).Message);
        }
    }

    // ---- helpers ----

    private CheckpointContents Contents(int step, bool withOptimizer = false)
    {
        var contents = new CheckpointContents
        {
            Config = new JsonObject { ["tokenizer"] = "byte" },
            TrainerState = new JsonObject { ["step"] = step },
        };
        contents.Model.Add<float>("w", [step, step + 0.5f], [2]);
        if (withOptimizer)
        {
            contents.Optimizer = new SafeTensorsWriter().Add<float>("w.m", [0.25f, 0.75f], [2]);
        }
        return contents;
    }

    private void Save(int step, string? path = null, bool withOptimizer = false) =>
        CheckpointDirectory.Save(path ?? _path, Contents(step, withOptimizer), Ct);

    private int LoadedStep()
    {
        using var loaded = CheckpointDirectory.Load(_path);
        Assert.False(loaded.IsRecovered);
        Assert.Equal([loaded.TrainerState["step"]!.GetValue<int>(), loaded.TrainerState["step"]!.GetValue<int>() + 0.5f],
            loaded.Model.ReadArray<float>("w"));
        return loaded.TrainerState["step"]!.GetValue<int>();
    }

    /// <summary>Every file under the temp directory with its content, hidden ones included.</summary>
    private SortedDictionary<string, string> Snapshot()
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(_temp.Path, "*", SearchOption.AllDirectories))
        {
            files[Path.GetRelativePath(_temp.Path, file)] = Convert.ToBase64String(File.ReadAllBytes(file));
        }
        return files;
    }

    private sealed class CancelMarker;

    /// <summary>Cancels a token when the value is serialized (config.json being written).</summary>
    private sealed class CancelConverter(CancellationTokenSource cancellation) : JsonConverter<CancelMarker>
    {
        public static JsonTypeInfo<CancelMarker> TypeInfo(CancellationTokenSource cancellation) =>
            (JsonTypeInfo<CancelMarker>)new JsonSerializerOptions
            {
                Converters = { new CancelConverter(cancellation) },
                TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
            }.GetTypeInfo(typeof(CancelMarker));

        public override CancelMarker Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();

        public override void Write(Utf8JsonWriter writer, CancelMarker value, JsonSerializerOptions options)
        {
            cancellation.Cancel();
            writer.WriteNullValue();
        }
    }

    /// <summary>Runs an action when the value is serialized.</summary>
    private sealed class ProbeConverter(Action probe) : JsonConverter<CancelMarker>
    {
        public static JsonTypeInfo<CancelMarker> TypeInfo(Action probe) =>
            (JsonTypeInfo<CancelMarker>)new JsonSerializerOptions
            {
                Converters = { new ProbeConverter(probe) },
                TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
            }.GetTypeInfo(typeof(CancelMarker));

        public override CancelMarker Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();

        public override void Write(Utf8JsonWriter writer, CancelMarker value, JsonSerializerOptions options)
        {
            probe();
            writer.WriteNullValue();
        }
    }
}
