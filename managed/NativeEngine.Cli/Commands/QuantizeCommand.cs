using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using NativeEngine.Checkpoints;
using NativeEngine.Cli.Jobs;
using NativeEngine.Data;
using NativeEngine.Models;
using Spectre.Console;

namespace NativeEngine.Cli.Commands;

/// <summary><c>quantize</c>: turns a trained fp32 checkpoint's linear weights into per-channel int8, saves the
/// int8 checkpoint, and reports the evaluation loss and forward time of both side by side.</summary>
internal static class QuantizeCommand
{
    private const int TimingRepetitions = 3;

    public static Command Create()
    {
        var context = new ContextOptionsBinder();
        var checkpoint = new Option<DirectoryInfo>("--checkpoint") { Description = "The fp32 checkpoint to quantize.", Required = true, HelpName = "DIR" };
        var outDir = new Option<DirectoryInfo?>("--out") { Description = "Where the int8 checkpoint goes (default: the checkpoint's path + \"-int8\").", HelpName = "DIR" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace an existing checkpoint at --out." };
        var data = new Option<FileInfo?>("--data") { Description = "Text file to evaluate a text model on (default: the file it was trained on).", HelpName = "FILE" };
        var batches = new Option<int>("--batches") { Description = "Validation batches of a text model.", DefaultValueFactory = _ => 8, HelpName = "N" };
        var command = new Command("quantize", "Quantize a trained checkpoint's linear layers to int8 (per output channel; activations per row at run time) and compare its evaluation loss and speed with fp32.");
        context.AddTo(command);
        foreach (var option in new Option[] { checkpoint, outDir, overwrite, data, batches })
        {
            command.Add(option);
        }
        command.SetAction(parse =>
        {
            var source = parse.GetValue(checkpoint)!.FullName;
            var destination = parse.GetValue(outDir)?.FullName ?? Path.TrimEndingDirectorySeparator(source) + "-int8";
            if (CheckpointDirectory.Exists(destination) && !parse.GetValue(overwrite))
            {
                throw new CliException($"'{destination}' already holds a checkpoint; pass --overwrite to replace it, or another --out");
            }
            using var ctx = Context.Create(context.Bind(parse));
            using var model = CheckpointModel.Load(ctx, source);
            var fp32 = model.Fp32 ?? throw new CliException($"'{source}' is already an int8 checkpoint", ExitCodes.InputError);
            using var int8 = QuantizedLanguageModel.Quantize(fp32);
            var contents = new CheckpointContents { Config = model.Checkpoint.Config.DeepClone().AsObject() };
            int8.WriteCheckpoint(contents);
            CheckpointDirectory.Save(destination, contents);
            AnsiConsole.MarkupLine($"int8 checkpoint: [bold]{Markup.Escape(destination)}[/]");

            var evaluation = EvaluationData.For(model, parse.GetValue(data)?.FullName, parse.GetValue(batches));
            var ((fp32Loss, fp32Time), (int8Loss, int8Time)) = EvaluateSideBySide(fp32, int8, evaluation.Batches);
            var table = new Table().Border(TableBorder.Rounded).AddColumn("model").AddColumn(new TableColumn("eval loss").RightAligned())
                .AddColumn(new TableColumn("perplexity").RightAligned()).AddColumn(new TableColumn("forward ms (best of 3)").RightAligned());
            table.AddRow("fp32", Format(fp32Loss, "F4"), Format(Math.Exp(fp32Loss), "F3"), Format(fp32Time, "F1"));
            table.AddRow("int8", Format(int8Loss, "F4"), Format(Math.Exp(int8Loss), "F3"), Format(int8Time, "F1"));
            AnsiConsole.Write(table);
            var change = 100 * (int8Loss - fp32Loss) / fp32Loss;
            var summary = string.Create(CultureInfo.InvariantCulture,
                $"on {evaluation.Description}: int8 loss is {(change >= 0 ? "+" : "")}{change:F3}% vs fp32; int8 forward is {fp32Time / int8Time:F2}x the speed of fp32");
            AnsiConsole.MarkupLine(Markup.Escape(summary + " (the linear layers are int8; embeddings, attention, LayerNorms and the output softmax stay fp32)"));
            return ExitCodes.Success;
        });
        return command;
    }

    // Both models evaluate the same batches alternately, so that load on the machine affects both alike; the
    // loss is the same on every repetition (the kernels are deterministic), the time is the best of them.
    private static ((double Loss, double Milliseconds) Fp32, (double Loss, double Milliseconds) Int8) EvaluateSideBySide(
        DecoderOnlyTransformer fp32, QuantizedLanguageModel int8, IReadOnlyList<TokenBatch> batches)
    {
        (double Loss, double Milliseconds) best32 = (0, double.MaxValue);
        (double Loss, double Milliseconds) best8 = (0, double.MaxValue);
        for (var repetition = 0; repetition < TimingRepetitions; repetition++)
        {
            best32 = Faster(best32, Timed(() => Evaluation.MeanLoss(batches, fp32.EvaluateLoss, CancellationToken.None)));
            best8 = Faster(best8, Timed(() => Evaluation.MeanLoss(batches, int8.EvaluateLoss, CancellationToken.None)));
        }
        return (best32, best8);
    }

    private static (double Loss, double Milliseconds) Timed(Func<double> evaluate)
    {
        var clock = Stopwatch.StartNew();
        var loss = evaluate();
        return (loss, clock.Elapsed.TotalMilliseconds);
    }

    private static (double Loss, double Milliseconds) Faster((double Loss, double Milliseconds) a, (double Loss, double Milliseconds) b) =>
        b.Milliseconds < a.Milliseconds ? b : a;

    private static string Format(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
