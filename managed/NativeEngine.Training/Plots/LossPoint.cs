namespace NativeEngine.Training;

/// <summary>One row of a <see cref="LossCurve"/>.</summary>
/// <param name="Step">The optimizer step.</param>
/// <param name="TrainLoss">The training loss at that step (mean over the batch's trained tokens).</param>
/// <param name="EvalLoss">The evaluation loss, when an evaluation ran at that step; otherwise <see langword="null"/>.</param>
/// <param name="TokensPerSecond">Training throughput at that step.</param>
/// <param name="LearningRate">The learning rate used at that step.</param>
public readonly record struct LossPoint(long Step, double TrainLoss, double? EvalLoss, double TokensPerSecond, double LearningRate);
