using System.Globalization;
using NativeEngine.Models;

namespace NativeEngine.Training;

/// <summary>Options of a <see cref="Trainer"/> run. <see cref="Validate"/> checks them; the trainer calls it.</summary>
public sealed record TrainerOptions
{
    /// <summary>The number of optimizer steps of the whole run (a resumed run continues up to it), &gt;= 1.
    /// Default: 1000.</summary>
    public long Steps { get; init; } = 1000;

    /// <summary>Rows per optimizer step, &gt;= 1, a multiple of <see cref="AccumulationSteps"/>. Default: 32.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>The micro-batches each step's batch is split into (gradient accumulation), &gt;= 1: each holds
    /// <see cref="BatchSize"/> / <see cref="AccumulationSteps"/> rows, and the step's loss and gradient are
    /// their mean weighted by trained tokens, as one batch of <see cref="BatchSize"/> rows would give. Default: 1.</summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>The peak learning rate (for <see cref="LearningRateScheduleKind.InverseSquareRoot"/>, the scale of the
    /// formula), finite and &gt;= 0. Default: 3e-4.</summary>
    public double LearningRate { get; init; } = 3e-4;

    /// <summary>The learning-rate schedule. Default: <see cref="LearningRateScheduleKind.WarmupCosine"/>.</summary>
    public LearningRateScheduleKind Schedule { get; init; } = LearningRateScheduleKind.WarmupCosine;

    /// <summary>The warmup steps, 0 to <see cref="Steps"/> (&gt;= 1 for
    /// <see cref="LearningRateScheduleKind.InverseSquareRoot"/>). Default: 0.</summary>
    public long WarmupSteps { get; init; }

    /// <summary>The floor of <see cref="LearningRateScheduleKind.WarmupCosine"/>, 0 to <see cref="LearningRate"/>.
    /// Default: 0.</summary>
    public double MinLearningRate { get; init; }

    /// <summary>d_model of <see cref="LearningRateScheduleKind.InverseSquareRoot"/> (unused otherwise). Default: 0.</summary>
    public int ModelDimension { get; init; }

    /// <summary>Decoupled weight decay of matrices and embeddings (not of norms and biases; see
    /// <see cref="AdamW.Decays"/>), finite and &gt;= 0. Default: 0.01.</summary>
    public float WeightDecay { get; init; } = 0.01f;

    /// <summary>AdamW's (beta1, beta2), each in [0, 1). Default: (0.9, 0.999).</summary>
    public (float Beta1, float Beta2) Betas { get; init; } = (0.9f, 0.999f);

    /// <summary>AdamW's epsilon, &gt; 0. Default: 1e-8.</summary>
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>&gt; 0 clips the global gradient norm to this value; 0 does not clip. Default: 1.</summary>
    public float MaxGradNorm { get; init; } = 1f;

    /// <summary>The training loss: <see cref="LossOptions.Kind"/> and <see cref="LossOptions.Samples"/> (&gt;= 1 for
    /// sampled softmax); its <see cref="LossOptions.Seed"/> is ignored, as the trainer derives one per step from
    /// <see cref="Seed"/>. Evaluation always uses the full softmax. Default: <see cref="LossOptions.Full"/>.</summary>
    public LossOptions Loss { get; init; } = LossOptions.Full;

    /// <summary>Evaluate every this many steps (and at the last step); 0 never evaluates. Default: 0.</summary>
    public long EvalEvery { get; init; }

    /// <summary>The evaluation batches of <see cref="BatchSize"/> / <see cref="AccumulationSteps"/> rows, &gt;= 1
    /// (fewer when the data has fewer). Default: 8.</summary>
    public int EvalBatches { get; init; } = 8;

    /// <summary>Report progress (and add a point to the loss curve) every this many steps, &gt;= 1; steps that
    /// evaluate, save a checkpoint or end the run are reported too. Only reported steps copy their loss to the
    /// host: on a device backend the other steps never make the host wait for the device. Default: 1.</summary>
    public long LogEvery { get; init; } = 1;

    /// <summary>Save a checkpoint every this many steps (and at the last step) when
    /// <see cref="CheckpointDirectory"/> is set; 0 saves only at the last step. Default: 0.</summary>
    public long CheckpointEvery { get; init; }

    /// <summary>The checkpoint directory (see <see cref="Checkpoints.CheckpointDirectory"/>); the loss curve is
    /// written beside it (<see cref="Trainer.LossCurveCsvPath"/>). <see langword="null"/>: no checkpoint and no
    /// files. Default: null.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>The seed of the per-step dropout masks and sampled-softmax candidates. Default: 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>The rows of one micro-batch (and of one evaluation batch): <see cref="BatchSize"/> /
    /// <see cref="AccumulationSteps"/>.</summary>
    public int MicroBatchSize => BatchSize / AccumulationSteps;

    /// <summary>The AdamW hyperparameters these options give.</summary>
    /// <returns>The optimizer options.</returns>
    public AdamWOptions ToAdamWOptions() => new()
    {
        Beta1 = Betas.Beta1,
        Beta2 = Betas.Beta2,
        Epsilon = Epsilon,
        WeightDecay = WeightDecay,
        MaxGradNorm = MaxGradNorm,
    };

    /// <summary>Throws unless every option is in range.</summary>
    /// <exception cref="ArgumentException">An option is out of range; the message names it and its range.</exception>
    public void Validate()
    {
        if (Steps < 1)
        {
            throw Invalid($"Steps is {Steps}; it must be >= 1.");
        }
        if (BatchSize < 1 || AccumulationSteps < 1 || BatchSize % AccumulationSteps != 0)
        {
            throw Invalid($"BatchSize is {BatchSize} and AccumulationSteps {AccumulationSteps}; both must be >= 1 and BatchSize a multiple of AccumulationSteps.");
        }
        if (!double.IsFinite(LearningRate) || LearningRate < 0)
        {
            throw Invalid($"LearningRate is {LearningRate}; it must be finite and >= 0.");
        }
        if (!Enum.IsDefined(Schedule))
        {
            throw Invalid($"Schedule is {Schedule}; it must be one of {string.Join(", ", Enum.GetNames<LearningRateScheduleKind>())}.");
        }
        if (WarmupSteps < 0 || WarmupSteps > Steps)
        {
            throw Invalid($"WarmupSteps is {WarmupSteps}; it must be 0 to Steps ({Steps}).");
        }
        if (Schedule == LearningRateScheduleKind.WarmupCosine && !(MinLearningRate >= 0 && MinLearningRate <= LearningRate))
        {
            throw Invalid($"MinLearningRate is {MinLearningRate}; it must be 0 to LearningRate ({LearningRate}).");
        }
        if (Schedule == LearningRateScheduleKind.InverseSquareRoot && (ModelDimension < 1 || WarmupSteps < 1))
        {
            throw Invalid($"The InverseSquareRoot schedule needs ModelDimension >= 1 and WarmupSteps >= 1; they are {ModelDimension} and {WarmupSteps}.");
        }
        ToAdamWOptions().Validate();
        if (!Enum.IsDefined(Loss.Kind))
        {
            throw Invalid($"Loss.Kind is {Loss.Kind}; it must be Full or Sampled.");
        }
        if (Loss.Kind == LossKind.Sampled && Loss.Samples < 1)
        {
            throw Invalid($"Loss.Samples is {Loss.Samples}; sampled softmax needs >= 1 sample per step.");
        }
        if (EvalEvery < 0 || EvalBatches < 1)
        {
            throw Invalid($"EvalEvery is {EvalEvery} and EvalBatches {EvalBatches}; EvalEvery must be >= 0 (0: never) and EvalBatches >= 1.");
        }
        if (LogEvery < 1)
        {
            throw Invalid($"LogEvery is {LogEvery}; it must be >= 1.");
        }
        if (CheckpointEvery < 0)
        {
            throw Invalid($"CheckpointEvery is {CheckpointEvery}; it must be >= 0 (0: only at the last step).");
        }
        if (CheckpointDirectory is { Length: 0 })
        {
            throw Invalid($"CheckpointDirectory is empty; give a path, or null for no checkpoints.");
        }
    }

    private static ArgumentException Invalid(FormattableString message) =>
        new(message.ToString(CultureInfo.InvariantCulture), "options");
}
