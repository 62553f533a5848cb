using System.Text.Json.Nodes;
using NativeEngine.Data;
using NativeEngine.Tokenizers;

namespace NativeEngine.Cli.Jobs;

/// <summary>The held-out batches a checkpoint is evaluated on: the reversal task's held-out set, or validation
/// windows of the text file it was trained on (or of <c>--data</c>).</summary>
internal sealed class EvaluationData
{
    private EvaluationData(IReadOnlyList<TokenBatch> batches, string description, ReversalTask? task)
    {
        Batches = batches;
        Description = description;
        Task = task;
    }

    public IReadOnlyList<TokenBatch> Batches { get; }

    public string Description { get; }

    public ReversalTask? Task { get; }

    public static EvaluationData For(CheckpointModel model, string? dataFile, int batches)
    {
        if (batches < 1)
        {
            throw new CliException($"--batches must be positive; got {batches}");
        }
        var checkpoint = model.Checkpoint;
        if (JobConfig.IsReversal(checkpoint))
        {
            if (dataFile is not null)
            {
                throw new CliException("--data applies to text models; this checkpoint was trained on the reversal task");
            }
            var task = JobConfig.ReadReversalTask(checkpoint);
            const int rows = 64;
            var all = Enumerable.Range(0, task.HeldOutBatchCount(rows)).Select(i => task.GetHeldOutBatch(i, rows)).ToList();
            return new EvaluationData(all, $"reversal held-out set ({task.HeldOut.Count} sequences)", task);
        }
        var tokenizer = JobConfig.ReadTokenizer(checkpoint);
        var path = dataFile ?? (checkpoint.Config["data"] as JsonObject)?["path"]?.GetValue<string>()
            ?? throw new CliException("this checkpoint names no data file; pass --data FILE");
        var length = JobConfig.ReadSequenceLength(checkpoint) ?? model.Config.MaxSequenceLength;
        var text = Evaluation.LoadText("data", path, tokenizer, new TextDatasetOptions { SequenceLength = length });
        var windows = Evaluation.TextValidationBatches(text, batches);
        return new EvaluationData(windows, $"{batches} x {Evaluation.TextBatchSize} validation windows of {Path.GetFileName(path)} ({tokenizer.Name} tokens)", null);
    }
}
