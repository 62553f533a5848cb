namespace NativeEngine.Training;

/// <summary>What a <see cref="Trainer"/> reports after a logged step (see <see cref="TrainerOptions.LogEvery"/>).</summary>
/// <param name="Step">The optimizer step just taken (1-based).</param>
/// <param name="TotalSteps"><see cref="TrainerOptions.Steps"/>.</param>
/// <param name="Loss">The step's training loss: the mean over the batch's trained tokens (of all its micro-batches).</param>
/// <param name="LearningRate">The learning rate of the step.</param>
/// <param name="GradientNorm">The global norm of the step's (averaged) gradient before clipping.</param>
/// <param name="TokensPerSecond">Trained tokens per second of training time since the previous report
/// (evaluation and checkpoint time excluded).</param>
/// <param name="Elapsed">Wall time since <see cref="Trainer.Run"/> started.</param>
/// <param name="Evaluation">The evaluation run after this step, or <see langword="null"/>.</param>
/// <param name="CheckpointSaved">Whether a checkpoint of this step was saved.</param>
public sealed record TrainingProgress(long Step, long TotalSteps, double Loss, double LearningRate, double GradientNorm,
    double TokensPerSecond, TimeSpan Elapsed, EvaluationResult? Evaluation, bool CheckpointSaved)
{
    /// <summary>The evaluation loss, when an evaluation ran after this step.</summary>
    public double? EvalLoss => Evaluation?.Loss;

    /// <summary>The evaluation perplexity, <c>exp(EvalLoss)</c>, when an evaluation ran after this step.</summary>
    public double? EvalPerplexity => Evaluation?.Perplexity;
}

/// <summary>The full-softmax loss of a model on evaluation batches.</summary>
/// <param name="Loss">The mean cross-entropy over every trained token of the batches (in nats).</param>
/// <param name="Batches">The batches evaluated.</param>
/// <param name="Tokens">The trained tokens evaluated.</param>
public sealed record EvaluationResult(double Loss, int Batches, long Tokens)
{
    /// <summary>The perplexity, <c>exp(Loss)</c>.</summary>
    public double Perplexity => Math.Exp(Loss);
}

/// <summary>How a <see cref="Trainer.Run"/> ended (when it was not canceled).</summary>
/// <param name="FirstStep">The first step this run took (after a resume, the checkpoint's step + 1);
/// <paramref name="LastStep"/> + 1 when no step was left to take.</param>
/// <param name="LastStep">The step reached: <see cref="TrainerOptions.Steps"/>, or the resumed step if it was beyond.</param>
/// <param name="FinalLoss">The training loss of the last step, or <see langword="null"/> when the run had no step
/// left to take.</param>
/// <param name="FinalEvaluation">The last evaluation of the run, or <see langword="null"/>.</param>
/// <param name="Elapsed">The wall time of the run.</param>
/// <param name="StepTime">The part of <paramref name="Elapsed"/> spent in training steps (forward, backward and
/// optimizer, and the loss reads of reported steps), without evaluations, checkpoints and the loss curve: the
/// time to compare with another implementation's training steps.</param>
/// <param name="HostWaits">How many times the host waited for the device during the run
/// (<see cref="ContextActivity.HostWaits"/>): reported steps read their loss and gradient norm, evaluations and
/// checkpoints read more, and the other steps make none. Always 0 on the CPU backend.</param>
public sealed record TrainingResult(long FirstStep, long LastStep, double? FinalLoss, EvaluationResult? FinalEvaluation, TimeSpan Elapsed,
    TimeSpan StepTime, long HostWaits);
