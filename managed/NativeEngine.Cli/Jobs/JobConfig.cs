using System.Text.Json.Nodes;
using NativeEngine.Checkpoints;
using NativeEngine.Data;
using NativeEngine.Tokenizers;

namespace NativeEngine.Cli.Jobs;

/// <summary>
/// What the CLI records in a checkpoint's <c>config.json</c> beside the model (written by
/// <c>ModelCheckpoint.Describe</c>): the tokenizer, and for the built-in task its options, so that
/// <c>generate</c> and <c>eval</c> rebuild exactly the vocabulary and held-out set the model was trained on.
/// </summary>
internal static class JobConfig
{
    /// <summary>The <c>"tokenizer"</c> of a model trained on the built-in reversal task (its own symbol ids).</summary>
    public const string ReversalTokenizer = "reversal";

    private const string TaskKey = "task";
    private const string DataKey = "data";

    public static void DescribeReversal(JsonObject config, ReversalTaskOptions options)
    {
        config[CheckpointDirectory.TokenizerKey] = ReversalTokenizer;
        config[TaskKey] = new JsonObject
        {
            ["alphabet_size"] = options.AlphabetSize,
            ["min_length"] = options.MinLength,
            ["max_length"] = options.MaxLength,
            ["held_out_count"] = options.HeldOutCount,
            ["seed"] = options.Seed,
        };
    }

    public static void DescribeText(JsonObject config, ITokenizer tokenizer, string dataPath, int sequenceLength)
    {
        config[CheckpointDirectory.TokenizerKey] = tokenizer.Name;
        config[DataKey] = new JsonObject
        {
            ["path"] = Path.GetFullPath(dataPath),
            ["sequence_length"] = sequenceLength,
        };
    }

    public static bool IsReversal(LoadedCheckpoint checkpoint) =>
        checkpoint.Config[CheckpointDirectory.TokenizerKey] is JsonValue value
        && value.TryGetValue<string>(out var name) && name == ReversalTokenizer;

    /// <summary>The reversal task a checkpoint was trained on.</summary>
    /// <exception cref="CliException">The configuration does not describe one.</exception>
    public static ReversalTask ReadReversalTask(LoadedCheckpoint checkpoint)
    {
        var task = checkpoint.Config[TaskKey] as JsonObject
            ?? throw new CliException($"{ConfigPath(checkpoint)} has no \"{TaskKey}\" section for the reversal task", ExitCodes.InputError);
        try
        {
            return new ReversalTask(new ReversalTaskOptions
            {
                AlphabetSize = ReadInt(task, "alphabet_size", checkpoint),
                MinLength = ReadInt(task, "min_length", checkpoint),
                MaxLength = ReadInt(task, "max_length", checkpoint),
                HeldOutCount = ReadInt(task, "held_out_count", checkpoint),
                Seed = ReadLong(task, "seed", checkpoint),
            });
        }
        catch (ArgumentException e)
        {
            throw new CliException($"{ConfigPath(checkpoint)}: invalid \"{TaskKey}\": {e.Message}", ExitCodes.InputError);
        }
    }

    /// <summary>The tokenizer of a text model's checkpoint.</summary>
    /// <exception cref="CliException">The configuration names no tokenizer this version knows.</exception>
    public static ITokenizer ReadTokenizer(LoadedCheckpoint checkpoint)
    {
        try
        {
            return checkpoint.CreateTokenizer();
        }
        catch (Exception e) when (e is CheckpointException or ArgumentException)
        {
            throw new CliException(e.Message, ExitCodes.InputError);
        }
    }

    /// <summary>The sequence length a text model was trained with, or null.</summary>
    public static int? ReadSequenceLength(LoadedCheckpoint checkpoint) =>
        checkpoint.Config[DataKey] is JsonObject data && data["sequence_length"] is JsonValue value
        && value.TryGetValue<int>(out var length) ? length : null;

    private static int ReadInt(JsonObject section, string key, LoadedCheckpoint checkpoint) =>
        section[key] is JsonValue value && value.TryGetValue<int>(out var result)
            ? result
            : throw new CliException($"{ConfigPath(checkpoint)}: \"{TaskKey}.{key}\" is missing or not an integer", ExitCodes.InputError);

    private static long ReadLong(JsonObject section, string key, LoadedCheckpoint checkpoint) =>
        section[key] is JsonValue value && value.TryGetValue<long>(out var result)
            ? result
            : throw new CliException($"{ConfigPath(checkpoint)}: \"{TaskKey}.{key}\" is missing or not an integer", ExitCodes.InputError);

    private static string ConfigPath(LoadedCheckpoint checkpoint) =>
        Path.Combine(checkpoint.Path, CheckpointDirectory.ConfigFileName);
}
