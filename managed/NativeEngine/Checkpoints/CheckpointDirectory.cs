using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NativeEngine.Checkpoints;

/// <summary>
/// Saves and loads a training checkpoint: one directory of files, replaced as a whole so that an
/// interrupted save never damages the last good checkpoint.
/// </summary>
/// <remarks>
/// <para>Layout of a checkpoint directory <c>&lt;path&gt;/</c>:</para>
/// <list type="table">
/// <item><term><c>model.safetensors</c></term><description>the model's tensors (<see cref="CheckpointContents.Model"/>).</description></item>
/// <item><term><c>optimizer.safetensors</c></term><description>optional: the optimizer's tensors (<see cref="CheckpointContents.Optimizer"/>).</description></item>
/// <item><term><c>config.json</c></term><description>the model's configuration, <c>"tokenizer"</c> included (<see cref="CheckpointContents.Config"/>).</description></item>
/// <item><term><c>trainer_state.json</c></term><description>the trainer's state (<see cref="CheckpointContents.TrainerState"/>).</description></item>
/// <item><term><c>manifest.json</c></term><description>written last: <c>{"format": "nativeengine-checkpoint", "version": 1,
/// "files": {"model.safetensors": {"size": ..., "sha256": "..."}, ...}}</c>. A directory without it is not a
/// (complete) checkpoint.</description></item>
/// </list>
/// <para>Save protocol, next to the target <c>&lt;parent&gt;/&lt;name&gt;</c>:</para>
/// <list type="number">
/// <item>Refuse a target that is a file, or a non-empty directory that is not a checkpoint (no valid
/// <c>manifest.json</c>, or files NativeEngine did not write): nothing of the user's is ever deleted.</item>
/// <item>Finish what a killed save left: a backup <c>.&lt;name&gt;.previous</c> is moved back to the target if the
/// target is missing, or deleted if the target exists; a staging directory <c>.&lt;name&gt;.staging</c> is deleted.</item>
/// <item>Write every file into a new staging directory <c>.&lt;name&gt;.staging</c>, each flushed to the disk, the
/// manifest last.</item>
/// <item>Swap: rename the target (if any) to <c>.&lt;name&gt;.previous</c>, rename the staging directory to the
/// target, delete the backup.</item>
/// </list>
/// <para>An exception or a cancellation during step 3 deletes the staging directory and leaves the target as
/// it was. A kill during step 3 leaves the target intact (and a staging directory, deleted by the next save).
/// A kill between the two renames of step 4 leaves no target but a complete backup: <see cref="Load"/> reads
/// the backup then (<see cref="LoadedCheckpoint.IsRecovered"/>), and the next save moves it back first.
/// Cancellation is honoured until the swap starts, not after. Two saves to the same path must not run at once,
/// and a <see cref="LoadedCheckpoint"/> of the path should be disposed before saving over it (Windows cannot
/// rename a directory whose files are open). Directory entries are not flushed to the disk (.NET has no call
/// for it): after a power loss the previous checkpoint may reappear, complete.</para>
/// <para>Loading verifies the manifest (format, and the size and SHA-256 of every file, which covers the
/// safetensors headers and data), parses the JSON files and validates the safetensors files; any problem is a
/// <see cref="CheckpointException"/>, and loading never writes, moves or deletes anything.</para>
/// </remarks>
public static class CheckpointDirectory
{
    /// <summary>The model's tensors.</summary>
    public const string ModelFileName = "model.safetensors";

    /// <summary>The optimizer's tensors (optional).</summary>
    public const string OptimizerFileName = "optimizer.safetensors";

    /// <summary>The model's configuration.</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>The trainer's state.</summary>
    public const string TrainerStateFileName = "trainer_state.json";

    /// <summary>The manifest, written last.</summary>
    public const string ManifestFileName = "manifest.json";

    /// <summary>The key of <see cref="CheckpointContents.Config"/> that names the tokenizer.</summary>
    public const string TokenizerKey = "tokenizer";

    /// <summary>The manifest's <c>"format"</c>.</summary>
    public const string FormatName = "nativeengine-checkpoint";

    /// <summary>The manifest's <c>"version"</c> this code writes and reads.</summary>
    public const int FormatVersion = 1;

    private static readonly string[] s_dataFiles = [ModelFileName, OptimizerFileName, ConfigFileName, TrainerStateFileName];

    private static readonly JsonWriterOptions s_jsonWriterOptions = new()
    {
        Indented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The staging directory of a save to <paramref name="path"/>: <c>&lt;parent&gt;/.&lt;name&gt;.staging</c>.</summary>
    /// <param name="path">The checkpoint directory.</param>
    /// <returns>The full path.</returns>
    public static string StagingPath(string path) => Sibling(Normalize(path), "staging");

    /// <summary>Where a save keeps the previous checkpoint during the swap: <c>&lt;parent&gt;/.&lt;name&gt;.previous</c>.</summary>
    /// <param name="path">The checkpoint directory.</param>
    /// <returns>The full path.</returns>
    public static string BackupPath(string path) => Sibling(Normalize(path), "previous");

    /// <summary>Whether <see cref="Load"/> would find a checkpoint at <paramref name="path"/> (a directory with
    /// a manifest, or the backup of an interrupted save); it does not verify the files.</summary>
    /// <param name="path">The checkpoint directory.</param>
    /// <returns>Whether a checkpoint is there.</returns>
    public static bool Exists(string path)
    {
        var target = Normalize(path);
        var directory = Directory.Exists(target) ? target : BackupPath(target);
        return File.Exists(System.IO.Path.Combine(directory, ManifestFileName));
    }

    /// <summary>Saves a checkpoint to the directory <paramref name="path"/>, replacing the checkpoint there
    /// (see the protocol in the remarks). Creates the parent directory if needed.</summary>
    /// <param name="path">The checkpoint directory.</param>
    /// <param name="contents">What to write.</param>
    /// <param name="cancellationToken">Checked between files and chunks of data until the swap starts.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="CheckpointException">The target, or a leftover staging or backup directory, holds
    /// something that is not a NativeEngine checkpoint; nothing was changed.</exception>
    /// <exception cref="ObjectDisposedException">A tensor of <paramref name="contents"/> was disposed; the
    /// previous checkpoint is intact.</exception>
    /// <exception cref="OperationCanceledException">The token was canceled; the previous checkpoint is intact.</exception>
    /// <exception cref="IOException">The file system failed; the previous checkpoint is intact or in the backup.</exception>
    public static void Save(string path, CheckpointContents contents, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(contents);
        var target = Normalize(path);
        var parent = System.IO.Path.GetDirectoryName(target)
            ?? throw new ArgumentException($"'{target}' is a root; a checkpoint needs a directory of its own.", nameof(path));
        var staging = Sibling(target, "staging");
        var backup = Sibling(target, "previous");
        cancellationToken.ThrowIfCancellationRequested();

        if (File.Exists(target))
        {
            throw new CheckpointException(target, "is a file, not a checkpoint directory; refusing to replace it");
        }
        if (Directory.Exists(target))
        {
            CheckReplaceable(target);
        }
        Directory.CreateDirectory(parent);

        // Finish what an earlier, killed save left behind.
        if (Directory.Exists(backup))
        {
            CheckOwned(backup);
            if (Directory.Exists(target))
            {
                Directory.Delete(backup, recursive: true);
            }
            else
            {
                Directory.Move(backup, target);
            }
        }
        if (Directory.Exists(staging))
        {
            CheckOwned(staging);
            Directory.Delete(staging, recursive: true);
        }

        Directory.CreateDirectory(staging);
        try
        {
            WriteFiles(staging, contents, cancellationToken);
        }
        catch
        {
            TryDeleteDirectory(staging);
            throw;
        }

        // The swap: from here on the save completes (no cancellation).
        var hadTarget = Directory.Exists(target);
        if (hadTarget)
        {
            Directory.Move(target, backup);
        }
        try
        {
            Directory.Move(staging, target);
        }
        catch
        {
            if (hadTarget && !Directory.Exists(target))
            {
                try
                {
                    Directory.Move(backup, target);
                }
                catch (IOException)
                {
                    // Load still finds the backup.
                }
            }
            TryDeleteDirectory(staging);
            throw;
        }
        if (hadTarget)
        {
            TryDeleteDirectory(backup);
        }
    }

    /// <summary>Loads and verifies the checkpoint in the directory <paramref name="path"/> (or, when that
    /// directory is missing, the backup an interrupted save left). Writes nothing.</summary>
    /// <param name="path">The checkpoint directory.</param>
    /// <returns>The checkpoint. Ownership: the caller must dispose it.</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    /// <exception cref="CheckpointException">There is no checkpoint, or it is incomplete, truncated or corrupt:
    /// the message names the file and the problem.</exception>
    /// <exception cref="IOException">A file cannot be read.</exception>
    public static LoadedCheckpoint Load(string path)
    {
        var target = Normalize(path);
        var directory = target;
        var recovered = false;
        if (!Directory.Exists(target))
        {
            var backup = Sibling(target, "previous");
            if (!File.Exists(target) && File.Exists(System.IO.Path.Combine(backup, ManifestFileName)))
            {
                directory = backup;
                recovered = true;
            }
            else
            {
                throw new CheckpointException(target, File.Exists(target)
                    ? "is a file, not a checkpoint directory"
                    : "no checkpoint: the directory does not exist");
            }
        }

        var manifest = ReadManifest(directory);
        foreach (var (name, entry) in manifest.Files!)
        {
            VerifyFile(System.IO.Path.Combine(directory, name), entry);
        }
        var config = ReadJsonObject(System.IO.Path.Combine(directory, ConfigFileName));
        var trainerState = ReadJsonObject(System.IO.Path.Combine(directory, TrainerStateFileName));
        // The manifest's SHA-256 covers the whole file: no need to hash the data a second time.
        var model = SafeTensorsFile.Open(System.IO.Path.Combine(directory, ModelFileName), SafeTensorsChecksum.Skip);
        try
        {
            var optimizer = manifest.Files!.ContainsKey(OptimizerFileName)
                ? SafeTensorsFile.Open(System.IO.Path.Combine(directory, OptimizerFileName), SafeTensorsChecksum.Skip)
                : null;
            return new LoadedCheckpoint(directory, recovered, model, optimizer, config, trainerState);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static void WriteFiles(string staging, CheckpointContents contents, CancellationToken cancellationToken)
    {
        contents.Model.Save(System.IO.Path.Combine(staging, ModelFileName), cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        contents.Optimizer?.Save(System.IO.Path.Combine(staging, OptimizerFileName), cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        WriteJson(System.IO.Path.Combine(staging, ConfigFileName), contents.Config ?? []);
        WriteJson(System.IO.Path.Combine(staging, TrainerStateFileName), contents.TrainerState ?? []);
        cancellationToken.ThrowIfCancellationRequested();

        var manifest = new CheckpointManifest { Format = FormatName, Version = FormatVersion, Files = [] };
        foreach (var name in s_dataFiles)
        {
            var file = System.IO.Path.Combine(staging, name);
            if (File.Exists(file))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (size, sha256) = Hash(file, cancellationToken);
                manifest.Files[name] = new CheckpointManifestEntry { Size = size, Sha256 = sha256 };
            }
        }
        var bytes = JsonSerializer.SerializeToUtf8Bytes(manifest, CheckpointJsonContext.Default.CheckpointManifest);
        AtomicFile.WriteAllBytes(System.IO.Path.Combine(staging, ManifestFileName), [.. bytes, (byte)'\n']);
    }

    private static void WriteJson(string path, JsonObject value) => AtomicFile.Write(path, stream =>
    {
        using (var writer = new Utf8JsonWriter(stream, s_jsonWriterOptions))
        {
            value.WriteTo(writer);
        }
        stream.WriteByte((byte)'\n');
    });

    private static CheckpointManifest ReadManifest(string directory)
    {
        var path = System.IO.Path.Combine(directory, ManifestFileName);
        if (!File.Exists(path))
        {
            throw new CheckpointException(directory,
                $"not a checkpoint: there is no {ManifestFileName} (another directory, or a save that never completed)");
        }
        CheckpointManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize(File.ReadAllBytes(path), CheckpointJsonContext.Default.CheckpointManifest);
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, $"invalid JSON: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        if (manifest is null || manifest.Format != FormatName)
        {
            throw new CheckpointException(path, $"not a NativeEngine checkpoint manifest: \"format\" is not \"{FormatName}\"");
        }
        if (manifest.Version != FormatVersion)
        {
            throw new CheckpointException(path, $"unsupported version {manifest.Version}; this NativeEngine reads version {FormatVersion}");
        }
        if (manifest.Files is null)
        {
            throw new CheckpointException(path, "invalid manifest: no \"files\"");
        }
        foreach (var (name, entry) in manifest.Files)
        {
            if (!s_dataFiles.Contains(name))
            {
                throw new CheckpointException(path, $"invalid manifest: unexpected file '{name}'");
            }
            if (entry is null || entry.Size < 0 || entry.Sha256 is not { Length: 64 })
            {
                throw new CheckpointException(path, $"invalid manifest: the entry of '{name}' needs a size and a 64-digit sha256");
            }
        }
        foreach (var required in (string[])[ModelFileName, ConfigFileName, TrainerStateFileName])
        {
            if (!manifest.Files.ContainsKey(required))
            {
                throw new CheckpointException(path, $"invalid manifest: it does not list {required}");
            }
        }
        return manifest;
    }

    private static void VerifyFile(string path, CheckpointManifestEntry entry)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new CheckpointException(path, $"missing file: {ManifestFileName} lists it but it does not exist");
        }
        if (info.Length != entry.Size)
        {
            throw new CheckpointException(path,
                $"{(info.Length < entry.Size ? "truncated" : "size mismatch")}: the file has {info.Length} bytes, {ManifestFileName} records {entry.Size}");
        }
        var (_, sha256) = Hash(path, CancellationToken.None);
        if (!string.Equals(sha256, entry.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new CheckpointException(path,
                $"checksum mismatch: the file's SHA-256 is {sha256} but {ManifestFileName} records {entry.Sha256!.ToLowerInvariant()}; the file is corrupt");
        }
    }

    private static JsonObject ReadJsonObject(string path)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, $"invalid JSON: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        return node as JsonObject ?? throw new CheckpointException(path, "invalid content: the JSON is not an object");
    }

    private static (long Size, string Sha256) Hash(string path, CancellationToken cancellationToken)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long size = 0;
            int read;
            while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                hash.AppendData(buffer, 0, read);
                size += read;
            }
            return (size, Convert.ToHexStringLower(hash.GetHashAndReset()));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A target directory may be replaced when it is empty or a checkpoint of ours.</summary>
    private static void CheckReplaceable(string target)
    {
        if (!Directory.EnumerateFileSystemEntries(target).Any())
        {
            return;
        }
        var manifestPath = System.IO.Path.Combine(target, ManifestFileName);
        var isCheckpoint = false;
        if (File.Exists(manifestPath))
        {
            try
            {
                var manifest = JsonSerializer.Deserialize(File.ReadAllBytes(manifestPath), CheckpointJsonContext.Default.CheckpointManifest);
                isCheckpoint = manifest?.Format == FormatName;
            }
            catch (JsonException)
            {
            }
        }
        if (!isCheckpoint)
        {
            throw new CheckpointException(target,
                $"exists and is not a NativeEngine checkpoint (no valid {ManifestFileName}); refusing to replace it: choose another path or move it away");
        }
        CheckOwned(target);
    }

    /// <summary>Throws unless the directory holds only files that a save writes (and their temporary files).</summary>
    private static void CheckOwned(string directory)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(directory))
        {
            var name = System.IO.Path.GetFileName(entry);
            var ours = File.Exists(entry) && (name == ManifestFileName || s_dataFiles.Contains(name) || IsTemporaryOf(name));
            if (!ours)
            {
                throw new CheckpointException(directory,
                    $"contains '{name}', which NativeEngine did not write; refusing to delete it: move it away and save again");
            }
        }
    }

    // AtomicFile's temporary files: ".<name>.<32 hex digits>.tmp".
    private static bool IsTemporaryOf(string fileName) =>
        fileName.StartsWith('.') && fileName.EndsWith(".tmp", StringComparison.Ordinal)
        && ((string[])[.. s_dataFiles, ManifestFileName]).Any(known => fileName.StartsWith($".{known}.", StringComparison.Ordinal));

    private static string Normalize(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
    }

    private static string Sibling(string target, string suffix) =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(target) ?? target, $".{System.IO.Path.GetFileName(target)}.{suffix}");

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
