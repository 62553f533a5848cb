using System.Text.Json.Nodes;
using NativeEngine.Tokenizers;

namespace NativeEngine.Checkpoints;

/// <summary>
/// A checkpoint read and verified by <see cref="CheckpointDirectory.Load"/>: its two JSON objects, and
/// its safetensors files open for reading.
/// </summary>
/// <remarks>Ownership: the caller must dispose it, which closes the safetensors files. Read the tensors
/// (<see cref="SafeTensorsFile.ReadInto(IReadOnlyDictionary{string, Tensor}, bool, CancellationToken)"/>) before disposing it.</remarks>
public sealed class LoadedCheckpoint : IDisposable
{
    internal LoadedCheckpoint(string path, bool recovered, SafeTensorsFile model, SafeTensorsFile? optimizer,
        JsonObject config, JsonObject trainerState)
    {
        Path = path;
        IsRecovered = recovered;
        Model = model;
        Optimizer = optimizer;
        Config = config;
        TrainerState = trainerState;
    }

    /// <summary>The directory the checkpoint was read from: the one passed to
    /// <see cref="CheckpointDirectory.Load"/>, or its backup when <see cref="IsRecovered"/>.</summary>
    public string Path { get; }

    /// <summary>Whether the checkpoint was read from the backup that an interrupted save left
    /// (<see cref="CheckpointDirectory.BackupPath"/>) because the directory itself was missing. The next
    /// <see cref="CheckpointDirectory.Save"/> to the same path moves it back first.</summary>
    public bool IsRecovered { get; }

    /// <summary><c>model.safetensors</c>.</summary>
    public SafeTensorsFile Model { get; }

    /// <summary><c>optimizer.safetensors</c>, or <see langword="null"/> when the checkpoint has none.</summary>
    public SafeTensorsFile? Optimizer { get; }

    /// <summary>The content of <c>config.json</c>.</summary>
    public JsonObject Config { get; }

    /// <summary>The content of <c>trainer_state.json</c>.</summary>
    public JsonObject TrainerState { get; }

    /// <summary>The tokenizer named by <c>Config["tokenizer"]</c> (<see cref="TokenizerFactory.Create"/>).</summary>
    /// <returns>The tokenizer.</returns>
    /// <exception cref="CheckpointException"><c>config.json</c> has no <c>"tokenizer"</c> string, or names an
    /// unknown tokenizer.</exception>
    public ITokenizer CreateTokenizer()
    {
        var configPath = System.IO.Path.Combine(Path, CheckpointDirectory.ConfigFileName);
        if (Config[CheckpointDirectory.TokenizerKey] is not JsonValue value || !value.TryGetValue<string>(out var name))
        {
            throw new CheckpointException(configPath, $"no tokenizer: the configuration has no \"{CheckpointDirectory.TokenizerKey}\" string");
        }
        try
        {
            return TokenizerFactory.Create(name);
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException(configPath,
                $"unknown tokenizer '{name}' (known: {string.Join(", ", TokenizerFactory.KnownNames)})", e);
        }
    }

    /// <summary>Closes the safetensors files. Calling it again does nothing.</summary>
    public void Dispose()
    {
        Model.Dispose();
        Optimizer?.Dispose();
    }
}
