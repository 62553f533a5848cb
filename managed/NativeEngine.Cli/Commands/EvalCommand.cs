using System.CommandLine;
using System.Globalization;
using NativeEngine.Cli.Jobs;
using Spectre.Console;

namespace NativeEngine.Cli.Commands;

/// <summary><c>eval</c>: the full-softmax loss and perplexity of a checkpoint (fp32 or int8) on held-out data,
/// and the exact match of a reversal model.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var context = new ContextOptionsBinder();
        var checkpoint = new Option<DirectoryInfo>("--checkpoint") { Description = "Checkpoint directory (fp32 or int8).", Required = true, HelpName = "DIR" };
        var data = new Option<FileInfo?>("--data") { Description = "Text file to evaluate a text model on (default: the file it was trained on).", HelpName = "FILE" };
        var batches = new Option<int>("--batches") { Description = "Validation batches of a text model.", DefaultValueFactory = _ => 8, HelpName = "N" };
        var command = new Command("eval", "Evaluate a checkpoint: loss and perplexity with the full softmax; exact match for reversal models.");
        context.AddTo(command);
        command.Add(checkpoint);
        command.Add(data);
        command.Add(batches);
        command.SetAction(parse =>
        {
            using var ctx = Context.Create(context.Bind(parse));
            using var model = CheckpointModel.Load(ctx, parse.GetValue(checkpoint)!.FullName);
            var evaluation = EvaluationData.For(model, parse.GetValue(data)?.FullName, parse.GetValue(batches));
            var loss = Evaluation.MeanLoss(evaluation.Batches, model.EvaluateLoss, CancellationToken.None);
            AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"{model.Kind} model on {evaluation.Description}: loss {loss:F4} nats/token, perplexity {Math.Exp(loss):F3}")));
            if (evaluation.Task is { } task)
            {
                var (score, _) = Evaluation.ReversalExactMatch(model.Autoregressive, task, CancellationToken.None);
                AnsiConsole.MarkupLine(Markup.Escape($"held-out exact match (greedy generation): {score}"));
            }
            return ExitCodes.Success;
        });
        return command;
    }
}
