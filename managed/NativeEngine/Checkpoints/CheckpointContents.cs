using System.Text.Json.Nodes;

namespace NativeEngine.Checkpoints;

/// <summary>
/// What <see cref="CheckpointDirectory.Save"/> writes: the model's tensors, optionally the optimizer's,
/// and two JSON objects. Fill it, save it, drop it.
/// </summary>
/// <example>
/// <code>
/// var contents = new CheckpointContents
/// {
///     Config = new JsonObject { ["tokenizer"] = tokenizer.Name, ["d_model"] = 128 },
///     TrainerState = new JsonObject { ["step"] = step, ["seed"] = seed },
///     Optimizer = new SafeTensorsWriter(),
/// };
/// foreach (var (name, parameter) in model.NamedParameters())
/// {
///     contents.Model.Add(name, parameter);
///     contents.Optimizer.Add(name + ".m", moments[name]);
/// }
/// CheckpointDirectory.Save("runs/reverse/checkpoint", contents, cancellationToken);
/// </code>
/// </example>
public sealed class CheckpointContents
{
    /// <summary>The model's tensors, written to <c>model.safetensors</c> (see <see cref="SafeTensorsWriter"/>:
    /// tensors added by reference are read during the save).</summary>
    public SafeTensorsWriter Model { get; } = new();

    /// <summary>The optimizer's tensors (such as AdamW moments), written to <c>optimizer.safetensors</c>;
    /// <see langword="null"/> (the default) writes no such file.</summary>
    public SafeTensorsWriter? Optimizer { get; set; }

    /// <summary>The model's configuration, written to <c>config.json</c>: everything needed to rebuild the model
    /// before loading its weights. By convention <c>"tokenizer"</c> holds the tokenizer's name (see
    /// <see cref="LoadedCheckpoint.CreateTokenizer"/>). Default: an empty object.</summary>
    public JsonObject Config { get; set; } = [];

    /// <summary>The trainer's state, written to <c>trainer_state.json</c>: step, seed, learning-rate schedule
    /// position, and anything else needed to resume. Default: an empty object.</summary>
    public JsonObject TrainerState { get; set; } = [];
}
