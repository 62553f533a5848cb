using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using NativeEngine.Checkpoints;
using NativeEngine.Data;
using NativeEngine.Inference;
using NativeEngine.Models;
using NativeEngine.Tokenizers;
using NativeEngine.Training;
using Spectre.Console;

namespace NativeEngine.Cli.Jobs;

/// <summary>The options of <c>train</c>; null means "the default of the job" (reversal task or text).</summary>
internal sealed record TrainRequest
{
    public required ContextOptions Context { get; init; }
    public string? DataFile { get; init; }
    public string Tokenizer { get; init; } = "byte";
    public LossKind Loss { get; init; }
    public int Samples { get; init; } = 1024;
    public long? Steps { get; init; }
    public int? BatchSize { get; init; }
    public double? LearningRate { get; init; }
    public long? WarmupSteps { get; init; }
    public LearningRateScheduleKind Schedule { get; init; } = LearningRateScheduleKind.WarmupCosine;
    public int? ModelDimension { get; init; }
    public int? Layers { get; init; }
    public int? Heads { get; init; }
    public int? KvHeads { get; init; }
    public int? MlpDimension { get; init; }
    public int SequenceLength { get; init; } = 64;
    public float Dropout { get; init; }
    public long? EvalEvery { get; init; }
    public long? CheckpointEvery { get; init; }
    public string? OutDirectory { get; init; }
    public bool Resume { get; init; }
    public bool Overwrite { get; init; }
    public ulong Seed { get; init; } = 1;
}

/// <summary>
/// Runs <c>train</c>: builds the data, the model and the trainer, trains with a live progress bar, saves the
/// checkpoint, then reports the held-out result (exact match on the reversal task, evaluation loss and perplexity
/// on text) with example outputs.
/// </summary>
internal static class TrainJob
{
    // The main job's model and schedule. Measured on a 2-core AMD EPYC VM (docs/benchmarks.md, "main job"): this
    // configuration reaches its held-out exact match well within the 3-minute budget of the README's first command.
    private const int ReversalDimension = 64;
    private const int ReversalBatchSize = 32;
    private const long ReversalSteps = 3000;
    private const double ReversalLearningRate = 3e-3;

    private const int TextDimension = 128;
    private const long TextSteps = 300;
    private const double TextLearningRate = 1e-3;

    private const int ExamplesShown = 5;
    // Reported steps read the loss back; on a device the steps between make no host wait.
    private const long LogEvery = 10;

    public static int Run(TrainRequest request)
    {
        Validate(request);
        var isText = request.DataFile is not null;
        var outDirectory = ResolveOutDirectory(request);
        var checkpointPath = Path.Combine(outDirectory, "checkpoint");

        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancellation.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            using var context = Context.Create(request.Context);
            ITokenizer? tokenizer = isText ? CreateTokenizer(request.Tokenizer) : null;
            var reversal = isText ? null : new ReversalTask(new ReversalTaskOptions { Seed = (long)(request.Seed & long.MaxValue) });
            var text = isText
                ? Evaluation.LoadText("--data", request.DataFile!, tokenizer!,
                    new TextDatasetOptions { SequenceLength = request.SequenceLength, Seed = (long)(request.Seed & long.MaxValue) })
                : null;
            ITrainingData data = isText ? new TextDatasetData(text!) : new ReversalTaskData(reversal!);
            var vocabulary = isText ? tokenizer!.VocabSize : reversal!.VocabSize;
            if (request.Loss == LossKind.Sampled && request.Samples > vocabulary)
            {
                throw new CliException($"--samples is {request.Samples}; the vocabulary has {vocabulary} classes, so at most that many can be sampled");
            }

            var modelConfig = CreateModelConfig(request, vocabulary, data.SequenceLength, isText);
            var config = new JsonObject();
            if (isText)
            {
                JobConfig.DescribeText(config, tokenizer!, request.DataFile!, data.SequenceLength);
            }
            else
            {
                JobConfig.DescribeReversal(config, reversal!.Options);
            }
            ModelCheckpoint.Describe(config, DecoderOnlyTransformer.Architecture, modelConfig);

            var steps = request.Steps ?? (isText ? TextSteps : ReversalSteps);
            var options = new TrainerOptions
            {
                Steps = steps,
                BatchSize = request.BatchSize ?? (isText ? Evaluation.TextBatchSize : ReversalBatchSize),
                LearningRate = request.LearningRate ?? (isText ? TextLearningRate : ReversalLearningRate),
                Schedule = request.Schedule,
                WarmupSteps = request.WarmupSteps ?? Math.Max(1, steps / 10),
                MinLearningRate = 0,
                ModelDimension = modelConfig.ModelDimension,
                WeightDecay = 0.01f,
                MaxGradNorm = 1f,
                Loss = request.Loss == LossKind.Sampled ? new LossOptions(LossKind.Sampled, request.Samples) : LossOptions.Full,
                EvalEvery = request.EvalEvery ?? Math.Max(1, steps / 5),
                LogEvery = LogEvery,
                EvalBatches = 4,
                CheckpointEvery = request.CheckpointEvery ?? Math.Max(1, steps / 4),
                CheckpointDirectory = checkpointPath,
                Seed = request.Seed,
            };

            using var model = CreateModel(context, request, modelConfig, checkpointPath);
            using var trainer = CreateTrainer(model, data, options, config);
            if (request.Resume && !trainer.TryResume(cancellation.Token))
            {
                throw new CliException($"--resume: no checkpoint in '{checkpointPath}'", ExitCodes.InputError);
            }

            PrintHeader(context, model, options, isText ? $"language model on {Path.GetFileName(request.DataFile)} ({tokenizer!.Name} tokens)" : "reversal task", outDirectory);
            var clock = Stopwatch.StartNew();
            TrainingResult result;
            try
            {
                result = RunWithProgress(trainer, cancellation.Token);
                if (trainer.LastCheckpointStep != trainer.Step)
                {
                    trainer.SaveCheckpoint(cancellation.Token);
                }
            }
            catch (OperationCanceledException)
            {
                var kept = trainer.LastCheckpointStep is { } step
                    ? $"the checkpoint of step {step} in '{checkpointPath}' is intact"
                    : "no checkpoint was saved yet";
                return CliApp.Fail(ExitCodes.Canceled, $"canceled at step {trainer.Step}; {kept}");
            }
            var trainTime = clock.Elapsed;

            model.Eval();
            if (reversal is not null)
            {
                ReportReversal(model, reversal, cancellation.Token);
            }
            else
            {
                ReportText(model, text!, tokenizer!, cancellation.Token);
            }
            AnsiConsole.MarkupLine(
                $"trained steps {result.FirstStep}..{result.LastStep} in {trainTime.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)} s " +
                $"({(trainer.TrainedTokens / Math.Max(1e-9, trainTime.TotalSeconds)).ToString("F0", CultureInfo.InvariantCulture)} trained tokens/s over the run; " +
                $"{(trainer.TrainedTokens / Math.Max(1e-9, result.StepTime.TotalSeconds)).ToString("F0", CultureInfo.InvariantCulture)} in the training steps alone, " +
                $"{(1000 * result.StepTime.TotalSeconds / Math.Max(1, result.LastStep - result.FirstStep + 1)).ToString("F3", CultureInfo.InvariantCulture)} ms/step)");
            if (context.Backend != Backend.Cpu)
            {
                AnsiConsole.MarkupLine(
                    $"host waits for the device: {result.HostWaits} over {result.LastStep - result.FirstStep + 1} steps " +
                    $"(the loss is read every {LogEvery} steps; evaluations and checkpoints read too; other steps wait for nothing)");
            }
            AnsiConsole.MarkupLine($"checkpoint: [bold]{Markup.Escape(checkpointPath)}[/]");
            if (trainer.LossCurvePngPath is { } png)
            {
                AnsiConsole.MarkupLine($"loss curve: {Markup.Escape(png)} and {Markup.Escape(trainer.LossCurveCsvPath!)}");
            }
            AnsiConsole.MarkupLine($"next: [grey]generate --checkpoint {Markup.Escape(checkpointPath)}[/] \u00b7 [grey]eval --checkpoint {Markup.Escape(checkpointPath)}[/]");
            return ExitCodes.Success;
        }
        catch (OperationCanceledException)
        {
            return CliApp.Fail(ExitCodes.Canceled, "canceled");
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static void Validate(TrainRequest request)
    {
        static void Positive(string option, long? value)
        {
            if (value is <= 0)
            {
                throw new CliException($"{option} must be positive; got {value}");
            }
        }
        Positive("--steps", request.Steps);
        Positive("--batch-size", request.BatchSize);
        Positive("--dim", request.ModelDimension);
        Positive("--layers", request.Layers);
        Positive("--heads", request.Heads);
        Positive("--kv-heads", request.KvHeads);
        Positive("--mlp", request.MlpDimension);
        Positive("--seq-len", request.SequenceLength);
        Positive("--samples", request.Samples);
        Positive("--eval-every", request.EvalEvery);
        Positive("--checkpoint-every", request.CheckpointEvery);
        if (request.WarmupSteps is < 0)
        {
            throw new CliException($"--warmup must be 0 or more; got {request.WarmupSteps}");
        }
        if (request.LearningRate is { } lr && !(lr > 0 && double.IsFinite(lr)))
        {
            throw new CliException($"--lr must be a positive number; got {lr.ToString(CultureInfo.InvariantCulture)}");
        }
        if (!(request.Dropout is >= 0f and < 1f))
        {
            throw new CliException($"--dropout must be in [0, 1); got {request.Dropout.ToString(CultureInfo.InvariantCulture)}");
        }
        if (request.Resume && request.Overwrite)
        {
            throw new CliException("--resume and --overwrite exclude each other");
        }
        if (request.DataFile is null && request.Tokenizer != "byte")
        {
            throw new CliException("--tokenizer applies to --data; the reversal task has its own symbols");
        }
    }

    // The default run directory is never reused: runs/reversal, then runs/reversal-2, ... so that running the
    // README's command twice keeps the first model. An explicit --out that holds a checkpoint needs --resume or
    // --overwrite.
    private static string ResolveOutDirectory(TrainRequest request)
    {
        if (request.OutDirectory is { } explicitDirectory)
        {
            var checkpoint = Path.Combine(explicitDirectory, "checkpoint");
            if (!request.Resume && !request.Overwrite && CheckpointDirectory.Exists(checkpoint))
            {
                throw new CliException($"'{checkpoint}' already holds a checkpoint; pass --resume to continue it, --overwrite to replace it, or another --out");
            }
            return explicitDirectory;
        }
        if (request.Resume)
        {
            throw new CliException("--resume needs --out DIR (the run to continue)");
        }
        var name = request.DataFile is null ? "reversal" : SafeName(Path.GetFileNameWithoutExtension(request.DataFile));
        var baseDirectory = Path.Combine(Environment.CurrentDirectory, "runs", name);
        var candidate = baseDirectory;
        for (var n = 2; Directory.Exists(candidate); n++)
        {
            candidate = $"{baseDirectory}-{n}";
        }
        return candidate;
    }

    private static string SafeName(string name)
    {
        var safe = new string(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());
        return safe.Length == 0 ? "text" : safe;
    }

    private static ITokenizer CreateTokenizer(string name)
    {
        try
        {
            return TokenizerFactory.Create(name);
        }
        catch (Exception e) when (e is not ArgumentException)
        {
            throw new CliException($"the {name} tokenizer could not be created: {e.Message}", ExitCodes.InputError);
        }
    }

    private static TransformerConfig CreateModelConfig(TrainRequest request, int vocabulary, int sequenceLength, bool isText)
    {
        var dimension = request.ModelDimension ?? (isText ? TextDimension : ReversalDimension);
        var heads = request.Heads ?? 4;
        var config = new TransformerConfig
        {
            VocabularySize = vocabulary,
            MaxSequenceLength = sequenceLength,
            ModelDimension = dimension,
            Layers = request.Layers ?? 2,
            Heads = heads,
            KvHeads = request.KvHeads ?? heads,
            MlpDimension = request.MlpDimension ?? 4 * dimension,
            Dropout = request.Dropout,
            TieEmbeddings = true,
        };
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CliException($"invalid model options: {e.Message}");
        }
        return config;
    }

    // With --resume the model is built from the checkpoint's own configuration, so the architecture options of
    // this command line cannot disagree with the weights.
    private static DecoderOnlyTransformer CreateModel(Context context, TrainRequest request, TransformerConfig config, string checkpointPath)
    {
        if (!request.Resume)
        {
            return new DecoderOnlyTransformer(context, config, request.Seed);
        }
        if (!CheckpointDirectory.Exists(checkpointPath))
        {
            throw new CliException($"--resume: no checkpoint in '{checkpointPath}'", ExitCodes.InputError);
        }
        try
        {
            using var checkpoint = CheckpointDirectory.Load(checkpointPath);
            var saved = ModelCheckpoint.ReadConfig(checkpoint, DecoderOnlyTransformer.Architecture);
            if (saved != config)
            {
                throw new CliException($"--resume: the checkpoint's model ({Describe(saved)}) differs from this command line's ({Describe(config)}); repeat the original options");
            }
            return new DecoderOnlyTransformer(context, saved, request.Seed);
        }
        catch (CheckpointException e)
        {
            throw new CliException(e.Message, ExitCodes.InputError);
        }
    }

    private static Trainer CreateTrainer(DecoderOnlyTransformer model, ITrainingData data, TrainerOptions options, JsonObject config)
    {
        try
        {
            return new Trainer(model, data, options, config);
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message);
        }
    }

    private static string Describe(TransformerConfig c) =>
        $"V={c.VocabularySize} T={c.MaxSequenceLength} C={c.ModelDimension} L={c.Layers} H={c.Heads}/{c.KvHeads} MLP={c.MlpDimension}";

    private static void PrintHeader(Context context, DecoderOnlyTransformer model, TrainerOptions options, string job, string outDirectory)
    {
        var c = model.Config;
        AnsiConsole.MarkupLine($"[bold]NativeEngine train[/]: {Markup.Escape(job)}");
        AnsiConsole.MarkupLine(
            $"[grey]{Markup.Escape(context.Backend.ToString())} \u00b7 {Markup.Escape(context.SimdLevel.ToString())} \u00b7 {context.NumThreads} thread(s) \u00b7 " +
            $"model {Markup.Escape(Describe(c))}, {model.ParameterCount.ToString("N0", CultureInfo.InvariantCulture)} parameters \u00b7 " +
            $"{options.Steps} steps x {options.BatchSize} sequences \u00b7 {(options.Loss.Kind == LossKind.Sampled ? $"sampled softmax ({options.Loss.Samples} samples)" : "full softmax")} \u00b7 " +
            $"seed {options.Seed} \u00b7 {Markup.Escape(outDirectory)}[/]");
    }

    private static TrainingResult RunWithProgress(Trainer trainer, CancellationToken cancellationToken)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            var lines = new LineProgress();
            return trainer.Run(lines, cancellationToken);
        }
        TrainingResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(progressContext =>
            {
                var task = progressContext.AddTask("training", maxValue: trainer.Options.Steps);
                task.Value = trainer.Step;
                double? evalLoss = null;
                result = trainer.Run(new SynchronousProgress(p =>
                {
                    evalLoss = p.EvalLoss ?? evalLoss;
                    task.Value = p.Step;
                    task.Description = Markup.Escape(FormatProgress(p, evalLoss));
                }), cancellationToken);
            });
        return result!;
    }

    private static string FormatProgress(TrainingProgress p, double? evalLoss) =>
        string.Create(CultureInfo.InvariantCulture,
            $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F3}  {(evalLoss is { } e ? $"eval {e:F3}  " : "")}{p.TokensPerSecond:F0} tok/s  lr {p.LearningRate:0.0e+0}");

    private static void ReportReversal(DecoderOnlyTransformer model, ReversalTask task, CancellationToken cancellationToken)
    {
        var (score, answers) = Evaluation.ReversalExactMatch(model, task, cancellationToken);
        var table = new Table().Border(TableBorder.Rounded).AddColumn("held-out prompt").AddColumn("model's answer").AddColumn("");
        foreach (var answer in answers.Take(ExamplesShown))
        {
            table.AddRow(Markup.Escape(task.Format(answer.Example.Prompt.ToArray())), Markup.Escape(task.Format(answer.Generated)),
                answer.Correct ? "[green]exact[/]" : "[red]wrong[/]");
        }
        AnsiConsole.Write(table);
        var color = score.Accuracy >= 0.95 ? "green" : "yellow";
        AnsiConsole.MarkupLine($"held-out exact match (greedy generation): [bold {color}]{Markup.Escape(score.ToString())}[/]");
    }

    private static void ReportText(DecoderOnlyTransformer model, TextDataset text, ITokenizer tokenizer, CancellationToken cancellationToken)
    {
        var loss = Evaluation.MeanLoss(Evaluation.TextValidationBatches(text, 8), model.EvaluateLoss, cancellationToken);
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"validation loss (full softmax): [bold]{loss:F4}[/] nats/token, perplexity {Math.Exp(loss):F2}"));
        var validation = text.ValidationTokens.Span;
        var prompt = validation[..Math.Min(16, validation.Length)].ToArray();
        var generated = new Generator(model).Generate(prompt, new GenerationOptions { MaxNewTokens = 48, Temperature = 0.8f, TopK = 40, Seed = 1 },
            null, cancellationToken);
        AnsiConsole.MarkupLine($"sample: [grey]{Markup.Escape(tokenizer.Decode(prompt))}[/]{Markup.Escape(tokenizer.Decode(generated.Tokens))}");
    }

    /// <summary>Calls back on the trainer's thread (a <see cref="Progress{T}"/> would post to the thread pool).</summary>
    private sealed class SynchronousProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    /// <summary>Progress for a console that is not interactive (redirected output, CI): a line per evaluation.</summary>
    private sealed class LineProgress : IProgress<TrainingProgress>
    {
        private double? _evalLoss;

        public void Report(TrainingProgress value)
        {
            _evalLoss = value.EvalLoss ?? _evalLoss;
            if (value.Evaluation is not null || value.Step == value.TotalSteps)
            {
                Console.WriteLine(FormatProgress(value, _evalLoss));
            }
        }
    }
}
