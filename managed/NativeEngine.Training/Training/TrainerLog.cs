using Microsoft.Extensions.Logging;

namespace NativeEngine.Training;

// The trainer's log messages, source-generated: no boxing or formatting unless the level is enabled.
internal static partial class TrainerLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information,
        Message = "Training steps {FirstStep} to {LastStep}: {Parameters} parameters, batch {BatchSize} rows in {MicroBatches} micro-batch(es), {Loss} loss, {Schedule} schedule, seed {Seed}")]
    internal static partial void RunStarting(this ILogger logger, long firstStep, long lastStep, long parameters, int batchSize,
        int microBatches, string loss, string schedule, ulong seed);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information,
        Message = "Step {Step}/{TotalSteps}: loss {Loss:F4}, learning rate {LearningRate:G4}, gradient norm {GradientNorm:G4}, {TokensPerSecond:F0} tokens/s")]
    internal static partial void StepCompleted(this ILogger logger, long step, long totalSteps, double loss, double learningRate,
        double gradientNorm, double tokensPerSecond);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information,
        Message = "Step {Step}: evaluation loss {Loss:F4}, perplexity {Perplexity:F3} ({Tokens} tokens in {Batches} batches)")]
    internal static partial void Evaluated(this ILogger logger, long step, double loss, double perplexity, long tokens, int batches);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Step {Step}: checkpoint saved to {Path} in {Milliseconds:F0} ms")]
    internal static partial void CheckpointSaved(this ILogger logger, long step, string path, double milliseconds);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information,
        Message = "Resumed from {Path} at step {Step} (seed {Seed}, {Points} loss-curve points){Recovered}")]
    internal static partial void Resumed(this ILogger logger, string path, long step, ulong seed, int points, string recovered);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning,
        Message = "Canceled after step {Step}; the last checkpoint ({Checkpoint}) is left as it was")]
    internal static partial void Canceled(this ILogger logger, long step, string checkpoint);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Training finished at step {Step} in {Elapsed}")]
    internal static partial void Finished(this ILogger logger, long step, TimeSpan elapsed);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning,
        Message = "The checkpoint was trained with {Option} = {Saved}, these options say {Current}: {Consequence}")]
    internal static partial void OptionDiffers(this ILogger logger, string option, string saved, string current, string consequence);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning, Message = "Loss curve {Path}: {Problem}; the curve restarts from what could be kept")]
    internal static partial void LossCurveIncomplete(this ILogger logger, string path, string problem);
}
