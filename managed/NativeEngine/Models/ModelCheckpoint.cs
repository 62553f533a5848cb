using System.Text.Json.Nodes;
using NativeEngine.Checkpoints;

namespace NativeEngine.Models;

/// <summary>
/// The layout of a model's part of a checkpoint's <c>config.json</c>: <c>"architecture"</c> names the model
/// class (<see cref="DecoderOnlyTransformer.Architecture"/>, ...) and <c>"model"</c> holds its
/// <see cref="TransformerConfig"/>; other keys (such as <c>"tokenizer"</c>) are left to their owners.
/// </summary>
public static class ModelCheckpoint
{
    /// <summary>The configuration key naming the model class.</summary>
    public const string ArchitectureKey = "architecture";

    /// <summary>The configuration key of the <see cref="TransformerConfig"/>.</summary>
    public const string ModelKey = "model";

    /// <summary>Writes the architecture and the model configuration into <paramref name="config"/>, replacing
    /// those two keys and keeping the others.</summary>
    /// <param name="config">A checkpoint configuration object.</param>
    /// <param name="architecture">The model class's architecture name.</param>
    /// <param name="model">The model configuration.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public static void Describe(JsonObject config, string architecture, TransformerConfig model)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentNullException.ThrowIfNull(model);
        config[ArchitectureKey] = architecture;
        config[ModelKey] = model.ToJsonObject();
    }

    /// <summary>The architecture named by a checkpoint's configuration.</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <returns>The architecture name.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="checkpoint"/> is null.</exception>
    /// <exception cref="CheckpointException">The configuration has no <c>"architecture"</c> string.</exception>
    public static string ReadArchitecture(LoadedCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (checkpoint.Config[ArchitectureKey] is JsonValue value && value.TryGetValue<string>(out var architecture))
        {
            return architecture;
        }
        throw new CheckpointException(ConfigPath(checkpoint), $"no model architecture: the configuration has no \"{ArchitectureKey}\" string");
    }

    /// <summary>Reads and validates the model configuration of a checkpoint of the expected architecture.</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <param name="architecture">The architecture the caller builds.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="CheckpointException">The checkpoint holds another architecture, or its model configuration
    /// is missing or invalid.</exception>
    public static TransformerConfig ReadConfig(LoadedCheckpoint checkpoint, string architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        var found = ReadArchitecture(checkpoint);
        var path = ConfigPath(checkpoint);
        if (found != architecture)
        {
            throw new CheckpointException(path, $"the checkpoint holds a '{found}' model; expected '{architecture}'");
        }
        if (checkpoint.Config[ModelKey] is not JsonObject model)
        {
            throw new CheckpointException(path, $"no model configuration: the configuration has no \"{ModelKey}\" object");
        }
        try
        {
            return TransformerConfig.FromJsonObject(model);
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException(path, $"invalid model configuration: {e.Message}", e);
        }
    }

    private static string ConfigPath(LoadedCheckpoint checkpoint) =>
        System.IO.Path.Combine(checkpoint.Path, CheckpointDirectory.ConfigFileName);
}
