using System.Text.Json.Serialization;

namespace NativeEngine.Checkpoints;

/// <summary>The content of a checkpoint's <c>manifest.json</c>, written last by
/// <see cref="CheckpointDirectory.Save"/>: the format, and the size and SHA-256 of every other file.</summary>
internal sealed class CheckpointManifest
{
    public string? Format { get; set; }

    public int Version { get; set; }

    public Dictionary<string, CheckpointManifestEntry>? Files { get; set; }
}

/// <summary>One file of a checkpoint: its size in bytes and the lowercase hex SHA-256 of its content.</summary>
internal sealed class CheckpointManifestEntry
{
    public long Size { get; set; }

    public string? Sha256 { get; set; }
}

/// <summary>Source-generated (de)serialization of <see cref="CheckpointManifest"/>.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(CheckpointManifest))]
internal sealed partial class CheckpointJsonContext : JsonSerializerContext;
