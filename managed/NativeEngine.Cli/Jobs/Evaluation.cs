using NativeEngine.Data;
using NativeEngine.Inference;
using NativeEngine.Tokenizers;

namespace NativeEngine.Cli.Jobs;

/// <summary>One held-out reversal example and the model's greedy answer.</summary>
internal sealed record ReversalAnswer(ReversalExample Example, int[] Generated, bool Correct);

/// <summary>The evaluations the CLI reports after training and in <c>eval</c>.</summary>
internal static class Evaluation
{
    /// <summary>Rows of a validation batch of a text model.</summary>
    public const int TextBatchSize = 16;

    /// <summary>Reads and tokenizes a text file; a file that cannot be used is a one-line input error naming
    /// <paramref name="label"/> (the option or role of the file).</summary>
    public static TextDataset LoadText(string label, string path, ITokenizer tokenizer, TextDatasetOptions options)
    {
        try
        {
            return TextDataset.FromFile(path, tokenizer, options);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
        {
            throw new CliException($"{label} '{path}': {e.Message}", ExitCodes.InputError);
        }
    }

    /// <summary>The first <paramref name="count"/> validation batches of a text data set.</summary>
    public static IReadOnlyList<TokenBatch> TextValidationBatches(TextDataset text, int count) =>
        Enumerable.Range(0, count).Select(i => text.GetValidationBatch(i, TextBatchSize)).ToList();

    /// <summary>Greedy generation (with the key/value cache) after every held-out prompt, scored by exact match
    /// of the reversed symbols and the end token.</summary>
    public static (ExactMatchScore Score, IReadOnlyList<ReversalAnswer> Answers) ReversalExactMatch(
        IAutoregressiveModel model, ReversalTask task, CancellationToken cancellationToken)
    {
        var generator = new Generator(model);
        var options = new GenerationOptions { MaxNewTokens = task.Options.MaxLength + 1, StopTokens = [task.EndId] };
        var answers = new List<ReversalAnswer>(task.HeldOut.Count);
        var correct = 0;
        foreach (var example in task.HeldOut)
        {
            var prompt = example.Prompt.ToArray();
            var generated = generator.Generate(prompt, options, null, cancellationToken).Tokens;
            var isCorrect = task.IsExactMatch(example, generated);
            correct += isCorrect ? 1 : 0;
            answers.Add(new ReversalAnswer(example, generated, isCorrect));
        }
        return (new ExactMatchScore(correct, task.HeldOut.Count), answers);
    }

    /// <summary>The mean full-softmax loss over <paramref name="batches"/>, weighted by their trained tokens.</summary>
    public static double MeanLoss(IEnumerable<TokenBatch> batches, Func<TokenBatch, float> loss, CancellationToken cancellationToken)
    {
        double total = 0;
        long tokens = 0;
        foreach (var batch in batches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            total += (double)loss(batch) * batch.TargetCount;
            tokens += batch.TargetCount;
        }
        return tokens == 0 ? 0 : total / tokens;
    }
}
