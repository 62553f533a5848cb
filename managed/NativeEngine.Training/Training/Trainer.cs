using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NativeEngine.Autograd;
using NativeEngine.Checkpoints;
using NativeEngine.Data;
using NativeEngine.Models;
using NativeEngine.Modules;

namespace NativeEngine.Training;

/// <summary>
/// Trains an <see cref="ILanguageModel"/> on an <see cref="ITrainingData"/> with <see cref="AdamW"/>: learning-rate
/// schedule, gradient accumulation and clipping, periodic evaluation, a loss curve, and checkpoints that a later
/// run resumes from exactly.
/// </summary>
/// <example>
/// <code>
/// using var model = ...;                                   // an ILanguageModel, initialized
/// var data = new ReversalTaskData(new ReversalTask());
/// var options = new TrainerOptions { Steps = 2000, BatchSize = 64, LearningRate = 1e-3, WarmupSteps = 100,
///     EvalEvery = 200, CheckpointEvery = 500, CheckpointDirectory = "runs/reverse/checkpoint" };
/// using var trainer = new Trainer(model, data, options, config: modelConfigWithTokenizer, logger);
/// trainer.TryResume();                                     // continues from runs/reverse/checkpoint if present
/// trainer.Run(progress, cancellationToken);                // runs/reverse/loss_curve.csv and .png beside it
/// </code>
/// </example>
/// <remarks>
/// <para>A step <c>s</c> (1-based) takes training batch <c>s - 1</c> of <see cref="TrainerOptions.BatchSize"/> rows,
/// splits it into <see cref="TrainerOptions.AccumulationSteps"/> micro-batches of consecutive rows, and runs one
/// recorded forward and backward pass per micro-batch on its own <see cref="GradientTape"/>. Micro-batch <c>i</c>'s
/// backward pass is seeded with <c>k * n_i / n</c> (<c>k</c> micro-batches, <c>n_i</c> of the step's <c>n</c>
/// trained tokens; 1 when they hold the same number), and <see cref="AdamW.Step"/> runs with
/// <c>gradScale = 1 / k</c>: the update is that of the mean loss over all <c>n</c> tokens, as one batch would give.
/// The learning rate is the schedule's at step <c>s</c>.</para>
/// <para>Determinism: before micro-batch <c>i</c> of step <c>s</c>, every dropout layer is seeded with
/// <see cref="DropoutSeed"/>(seed, s, i) (<see cref="Dropout.SeedAll"/>), and a sampled loss uses
/// <see cref="SamplerSeed"/>(seed, s, i). With the data's determinism, a step depends only on the parameters,
/// the optimizer state and (seed, s), so a run resumed from the checkpoint of step <c>c</c> computes steps
/// <c>c + 1 ...</c> exactly as the uninterrupted run (to the bit, on the same machine and thread count).</para>
/// <para>Evaluation (<see cref="Evaluate"/>): in evaluation mode under <see cref="GradientTape.NoGrad"/>, with
/// the full softmax, on the first <see cref="TrainerOptions.EvalBatches"/> evaluation batches.</para>
/// <para>Checkpoints (<see cref="SaveCheckpoint"/>, <see cref="CheckpointDirectory"/>): <c>model.safetensors</c>
/// (every parameter under its hierarchical name), <c>optimizer.safetensors</c> (<see cref="AdamW.AddStateTo"/>),
/// <c>config.json</c> (the caller's configuration, opaque), and <c>trainer_state.json</c>
/// (<c>{"format": "nativeengine-trainer", "version": 1, "step", "seed", "trained_tokens", "loss_curve": {"file",
/// "points", "last_step"}, "options": {...}}</c>). The loss curve is written beside the checkpoint directory
/// (<see cref="LossCurveCsvPath"/>, <see cref="LossCurvePngPath"/>) after each checkpoint, at the end of a run
/// and on cancellation; a resume reloads it and drops the points after the checkpoint.</para>
/// <para>Cancellation: <see cref="Run"/> checks its token between steps (and a checkpoint save checks it until
/// its atomic swap). It then writes the loss curve and throws <see cref="OperationCanceledException"/>; the last
/// checkpoint is left as it was, and no partial one is ever visible.</para>
/// <para>Ownership: the trainer owns its optimizer (moments) and a one-element loss accumulator, freed by
/// <see cref="Dispose"/>; the model and the data belong to the caller. Not thread-safe.</para>
/// </remarks>
public sealed class Trainer : IDisposable
{
    /// <summary>The loss curve's CSV file, in the checkpoint directory's parent.</summary>
    public const string LossCurveCsvFileName = "loss_curve.csv";

    /// <summary>The loss curve's PNG file, in the checkpoint directory's parent.</summary>
    public const string LossCurvePngFileName = "loss_curve.png";

    /// <summary>The <c>"format"</c> of <c>trainer_state.json</c>.</summary>
    public const string StateFormatName = "nativeengine-trainer";

    /// <summary>The <c>"version"</c> of <c>trainer_state.json</c> this code writes and reads.</summary>
    public const int StateFormatVersion = 1;

    private readonly ILanguageModel _model;
    private readonly ITrainingData _data;
    private readonly JsonObject _config;
    private readonly ILogger _logger;
    private readonly Tensor _stepLoss;
    private bool _disposed;

    /// <summary>Creates a trainer at step 0 with a fresh optimizer (call <see cref="TryResume"/> or
    /// <see cref="Resume"/> to continue a run).</summary>
    /// <param name="model">The model, initialized; the trainer does not own it.</param>
    /// <param name="data">The batches; the trainer does not own them.</param>
    /// <param name="options">The options (validated here).</param>
    /// <param name="config">The JSON object saved as <c>config.json</c> in every checkpoint (the model's
    /// configuration and <c>"tokenizer"</c>, see <see cref="CheckpointContents.Config"/>); copied. Null saves {}.</param>
    /// <param name="logger">Where progress, evaluations and checkpoints are logged; null logs nothing.</param>
    /// <remarks>Ownership: the caller owns the trainer and must dispose it.</remarks>
    /// <exception cref="ArgumentNullException">The model, data or options are null.</exception>
    /// <exception cref="ArgumentException">An option is out of range, the data's sequences are longer than the
    /// model accepts, or the sampled loss asks for more samples than the vocabulary has.</exception>
    public Trainer(ILanguageModel model, ITrainingData data, TrainerOptions options, JsonObject? config = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (data.SequenceLength > model.MaxSequenceLength)
        {
            throw new ArgumentException(
                $"The data's sequences have {data.SequenceLength} positions but the model accepts at most {model.MaxSequenceLength}.", nameof(data));
        }
        if (options.Loss.Kind == LossKind.Sampled && options.Loss.Samples > model.VocabularySize)
        {
            throw new ArgumentException(
                $"Loss.Samples is {options.Loss.Samples}; the model's vocabulary has {model.VocabularySize} classes, so at most that many can be sampled.",
                nameof(options));
        }
        _model = model;
        _data = data;
        Options = options;
        Seed = options.Seed;
        _config = config is null ? [] : config.DeepClone().AsObject();
        _logger = logger ?? NullLogger.Instance;
        Schedule = LearningRateSchedule.Create(options);
        if (options.CheckpointDirectory is { } directory)
        {
            var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
            var parent = Path.GetDirectoryName(full)
                ?? throw new ArgumentException($"CheckpointDirectory '{full}' is a root; a checkpoint needs a directory of its own.", nameof(options));
            CheckpointPath = full;
            LossCurveCsvPath = Path.Combine(parent, LossCurveCsvFileName);
            LossCurvePngPath = Path.Combine(parent, LossCurvePngFileName);
        }
        Optimizer = new AdamW(model.Module, options.ToAdamWOptions());
        try
        {
            _stepLoss = Tensor.Create(model.Module.Context, Dtype.F32).MoveTo(null);
        }
        catch
        {
            Optimizer.Dispose();
            throw;
        }
    }

    /// <summary>The options.</summary>
    public TrainerOptions Options { get; }

    /// <summary>The model being trained.</summary>
    public ILanguageModel Model => _model;

    /// <summary>The optimizer (owned by the trainer).</summary>
    public AdamW Optimizer { get; }

    /// <summary>The learning-rate schedule of the options.</summary>
    public LearningRateSchedule Schedule { get; }

    /// <summary>The steps completed: 0 for a new run, the checkpoint's step after a resume.</summary>
    public long Step { get; private set; }

    /// <summary>The seed of the per-step randomness: <see cref="TrainerOptions.Seed"/>, or the checkpoint's after a
    /// resume.</summary>
    public ulong Seed { get; private set; }

    /// <summary>The trained tokens (targets) of every step so far, resumed runs included.</summary>
    public long TrainedTokens { get; private set; }

    /// <summary>The step of the last checkpoint saved or resumed from, or null.</summary>
    public long? LastCheckpointStep { get; private set; }

    /// <summary>The reported steps so far (train loss, eval loss, throughput, learning rate).</summary>
    public LossCurve LossCurve { get; private set; } = new();

    /// <summary>The full path of <see cref="TrainerOptions.CheckpointDirectory"/>, or null.</summary>
    public string? CheckpointPath { get; }

    /// <summary>Where the loss curve's CSV is written: <see cref="LossCurveCsvFileName"/> beside the checkpoint
    /// directory; null without one.</summary>
    public string? LossCurveCsvPath { get; }

    /// <summary>Where the loss curve's PNG is written: <see cref="LossCurvePngFileName"/> beside the checkpoint
    /// directory; null without one.</summary>
    public string? LossCurvePngPath { get; }

    /// <summary>The seed of the dropout masks of micro-batch <paramref name="microBatch"/> of step
    /// <paramref name="step"/>.</summary>
    /// <param name="seed">The run's seed.</param>
    /// <param name="step">The 1-based step.</param>
    /// <param name="microBatch">The 0-based micro-batch.</param>
    /// <returns>The seed passed to <see cref="Dropout.SeedAll"/>.</returns>
    public static ulong DropoutSeed(ulong seed, long step, int microBatch) =>
        Initialization.Mix(Initialization.Mix(Initialization.StreamSeed(seed, "trainer.dropout"), unchecked((ulong)step)), (ulong)microBatch);

    /// <summary>The seed of the sampled-softmax candidates of micro-batch <paramref name="microBatch"/> of step
    /// <paramref name="step"/>.</summary>
    /// <param name="seed">The run's seed.</param>
    /// <param name="step">The 1-based step.</param>
    /// <param name="microBatch">The 0-based micro-batch.</param>
    /// <returns>The <see cref="LossOptions.Seed"/> of that loss.</returns>
    public static ulong SamplerSeed(ulong seed, long step, int microBatch) =>
        Initialization.Mix(Initialization.Mix(Initialization.StreamSeed(seed, "trainer.sampled_softmax"), unchecked((ulong)step)), (ulong)microBatch);

    /// <summary>Trains from <see cref="Step"/> + 1 to <see cref="TrainerOptions.Steps"/>, reporting every logged
    /// step, evaluating and saving checkpoints as the options say (see the remarks of <see cref="Trainer"/>).</summary>
    /// <param name="progress">Receives a report after every logged step, called synchronously on this thread
    /// (a <see cref="Progress{T}"/> posts it to its synchronization context); or null.</param>
    /// <param name="cancellationToken">Stops the run between steps (see the remarks).</param>
    /// <returns>How the run ended.</returns>
    /// <exception cref="OperationCanceledException">The token was canceled; the last checkpoint is intact.</exception>
    /// <exception cref="InvalidOperationException">The data returned a batch of the wrong shape, or the evaluation
    /// batches hold no trained token.</exception>
    /// <exception cref="CheckpointException">A checkpoint could not be saved because the directory holds something
    /// else.</exception>
    /// <exception cref="IOException">The file system failed while saving.</exception>
    /// <exception cref="ObjectDisposedException">The trainer was disposed.</exception>
    public TrainingResult Run(IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var firstStep = Step + 1;
        var runClock = Stopwatch.StartNew();
        // Training steps since the last report; stepTime sums it over the run (the last step is always reported).
        var trainClock = new Stopwatch();
        var stepTime = TimeSpan.Zero;
        long tokensSinceReport = 0;
        double? lastLoss = null;
        EvaluationResult? lastEvaluation = null;
        var module = _model.Module;
        var waitsBefore = module.Context.GetActivity().HostWaits;
        if (firstStep <= Options.Steps)
        {
            _logger.RunStarting(firstStep, Options.Steps, module.ParameterCount, Options.BatchSize, Options.AccumulationSteps,
                Options.Loss.Kind == LossKind.Sampled ? $"sampled softmax ({Options.Loss.Samples} samples)" : "full softmax",
                Options.Schedule.ToString(), Seed);
        }
        while (Step < Options.Steps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                WriteLossCurve();
                _logger.Canceled(Step, LastCheckpointStep is { } saved ? $"step {saved}" : "none");
                cancellationToken.ThrowIfCancellationRequested();
            }
            var step = Step + 1;
            var last = step == Options.Steps;
            var evaluates = Options.EvalEvery > 0 && (step % Options.EvalEvery == 0 || last);
            var checkpoints = CheckpointPath is not null && (last || (Options.CheckpointEvery > 0 && step % Options.CheckpointEvery == 0));
            var reported = last || evaluates || checkpoints || step % Options.LogEvery == 0;

            trainClock.Start();
            var learningRate = Schedule.GetLearningRate(step);
            var tokens = TrainStep(step, (float)learningRate, reported);
            Step = step;
            TrainedTokens += tokens;
            tokensSinceReport += tokens;
            if (!reported)
            {
                trainClock.Stop();
                continue;
            }
            // Reading the loss waits for the step's kernels: the clock then covers their work.
            var loss = ReadStepLoss();
            trainClock.Stop();
            var gradientNorm = Optimizer.ReadGradientNorm();
            var tokensPerSecond = trainClock.Elapsed.TotalSeconds > 0 ? tokensSinceReport / trainClock.Elapsed.TotalSeconds : 0;
            _logger.StepCompleted(step, Options.Steps, loss, learningRate, gradientNorm, tokensPerSecond);

            EvaluationResult? evaluation = null;
            if (evaluates)
            {
                evaluation = Evaluate();
                lastEvaluation = evaluation;
                _logger.Evaluated(step, evaluation.Loss, evaluation.Perplexity, evaluation.Tokens, evaluation.Batches);
            }
            LossCurve.Add(step, loss, evaluation?.Loss, tokensPerSecond, learningRate);
            if (checkpoints)
            {
                SaveCheckpoint(cancellationToken);
            }
            lastLoss = loss;
            progress?.Report(new TrainingProgress(step, Options.Steps, loss, learningRate, gradientNorm, tokensPerSecond,
                runClock.Elapsed, evaluation, checkpoints));
            tokensSinceReport = 0;
            stepTime += trainClock.Elapsed;
            trainClock.Reset();
        }
        if (firstStep <= Options.Steps)
        {
            WriteLossCurve();
            _logger.Finished(Step, runClock.Elapsed);
        }
        return new TrainingResult(firstStep, Step, lastLoss, lastEvaluation, runClock.Elapsed, stepTime,
            module.Context.GetActivity().HostWaits - waitsBefore);
    }

    /// <summary>The full-softmax loss of the model on the first <see cref="TrainerOptions.EvalBatches"/> evaluation
    /// batches of <see cref="TrainerOptions.MicroBatchSize"/> rows: in evaluation mode (no dropout), under
    /// <see cref="GradientTape.NoGrad"/>, weighted by trained tokens. The module's mode is restored afterwards.</summary>
    /// <returns>The loss and perplexity.</returns>
    /// <exception cref="InvalidOperationException">The data has no evaluation batch, or they hold no trained token;
    /// or a <see cref="GradientTape"/> is current.</exception>
    /// <exception cref="ObjectDisposedException">The trainer was disposed.</exception>
    public EvaluationResult Evaluate()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (GradientTape.Current is not null)
        {
            throw new InvalidOperationException("Evaluate runs its own forward passes; dispose the current GradientTape first.");
        }
        var batchSize = Options.MicroBatchSize;
        var batches = Math.Min(Options.EvalBatches, _data.EvaluationBatchCount(batchSize));
        if (batches < 1)
        {
            throw new InvalidOperationException("The data has no evaluation batch; set EvalEvery = 0 to train without evaluation.");
        }
        var module = _model.Module;
        var wasTraining = module.IsTraining;
        module.Eval();
        try
        {
            using var noGrad = GradientTape.NoGrad();
            double sum = 0;
            long tokens = 0;
            for (var index = 0; index < batches; index++)
            {
                var batch = _data.GetEvaluationBatch(index, batchSize);
                if (batch.TargetCount == 0)
                {
                    continue;
                }
                using var scope = new TensorScope();
                var loss = _model.Loss(batch, LossOptions.Full).Item();
                sum += (double)loss * batch.TargetCount;
                tokens += batch.TargetCount;
            }
            if (tokens == 0)
            {
                throw new InvalidOperationException($"The {batches} evaluation batch(es) hold no trained token (every target is ignored).");
            }
            return new EvaluationResult(sum / tokens, batches, tokens);
        }
        finally
        {
            module.Train(wasTraining);
        }
    }

    /// <summary>Saves a checkpoint of the current step to <see cref="TrainerOptions.CheckpointDirectory"/>
    /// (atomically, see <see cref="CheckpointDirectory.Save"/>), then writes the loss curve beside it.</summary>
    /// <param name="cancellationToken">Checked until the atomic swap; a cancellation leaves the previous checkpoint.</param>
    /// <exception cref="InvalidOperationException">The options name no checkpoint directory.</exception>
    /// <exception cref="OperationCanceledException">The token was canceled; the previous checkpoint is intact.</exception>
    /// <exception cref="CheckpointException">The directory holds something that is not a checkpoint.</exception>
    /// <exception cref="IOException">The file system failed; the previous checkpoint is intact or in its backup.</exception>
    /// <exception cref="ObjectDisposedException">The trainer was disposed.</exception>
    public void SaveCheckpoint(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var path = CheckpointPath ?? throw new InvalidOperationException("The options name no CheckpointDirectory to save to.");
        var clock = Stopwatch.StartNew();
        var contents = new CheckpointContents
        {
            Config = _config.DeepClone().AsObject(),
            TrainerState = StateJson(),
            Optimizer = new SafeTensorsWriter(),
        };
        foreach (var (name, parameter) in _model.Module.NamedParameters())
        {
            contents.Model.Add(name, parameter.Value);
        }
        Optimizer.AddStateTo(contents.Optimizer);
        CheckpointDirectory.Save(path, contents, cancellationToken);
        LastCheckpointStep = Step;
        _logger.CheckpointSaved(Step, path, clock.Elapsed.TotalMilliseconds);
        WriteLossCurve();
    }

    /// <summary>Resumes from <see cref="TrainerOptions.CheckpointDirectory"/> when a checkpoint is there
    /// (<see cref="CheckpointDirectory.Exists"/>); see <see cref="Resume"/>.</summary>
    /// <param name="cancellationToken">Checked while the tensors are read.</param>
    /// <returns>True when it resumed; false when there is no checkpoint directory or no checkpoint in it.</returns>
    /// <exception cref="CheckpointException">The checkpoint is incomplete, truncated, corrupt or does not match
    /// the model; nothing was changed (model, optimizer and files).</exception>
    /// <exception cref="IOException">A file cannot be read.</exception>
    /// <exception cref="ObjectDisposedException">The trainer was disposed.</exception>
    public bool TryResume(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (CheckpointPath is null || !CheckpointDirectory.Exists(CheckpointPath))
        {
            return false;
        }
        using var checkpoint = CheckpointDirectory.Load(CheckpointPath);
        Resume(checkpoint, cancellationToken);
        return true;
    }

    /// <summary>Resumes from a loaded checkpoint: the model's parameters, the optimizer's moments and step, the
    /// step, seed and token count, and the loss curve (reloaded from <see cref="LossCurveCsvPath"/> without the
    /// points after the checkpoint). Everything is validated before anything is copied.</summary>
    /// <param name="checkpoint">The checkpoint (the caller keeps and disposes it), such as one whose
    /// <see cref="LoadedCheckpoint.Config"/> built the model.</param>
    /// <param name="cancellationToken">Checked while the tensors are read; a cancellation leaves a partly loaded
    /// model.</param>
    /// <exception cref="ArgumentNullException"><paramref name="checkpoint"/> is null.</exception>
    /// <exception cref="CheckpointException">The trainer state is invalid, the optimizer state is missing, or a
    /// tensor does not match the model; nothing was changed.</exception>
    /// <exception cref="ObjectDisposedException">The trainer was disposed.</exception>
    public void Resume(LoadedCheckpoint checkpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var statePath = Path.Combine(checkpoint.Path, CheckpointDirectory.TrainerStateFileName);
        var state = checkpoint.TrainerState;
        if (ReadString(state, "format") != StateFormatName)
        {
            throw new CheckpointException(statePath, $"not a trainer state: \"format\" is not \"{StateFormatName}\"");
        }
        if (ReadLong(state, "version", statePath) != StateFormatVersion)
        {
            throw new CheckpointException(statePath, $"unsupported version {state["version"]}; this NativeEngine reads version {StateFormatVersion}");
        }
        var step = ReadLong(state, "step", statePath);
        var tokens = ReadLong(state, "trained_tokens", statePath);
        if (state["seed"] is not JsonValue seedValue || !seedValue.TryGetValue<ulong>(out var seed))
        {
            throw new CheckpointException(statePath, "invalid trainer state: \"seed\" is not an unsigned 64-bit integer");
        }
        var optimizerFile = checkpoint.Optimizer ?? throw new CheckpointException(checkpoint.Path,
            $"no {CheckpointDirectory.OptimizerFileName}: this checkpoint holds weights only, training cannot resume from it");
        var optimizerStep = Optimizer.ValidateState(optimizerFile);
        if (optimizerStep != step)
        {
            throw new CheckpointException(optimizerFile.Path,
                $"the optimizer state is at step {optimizerStep} but {CheckpointDirectory.TrainerStateFileName} is at step {step}");
        }
        var parameters = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, parameter) in _model.Module.NamedParameters())
        {
            parameters.Add(name, parameter.Value);
        }
        checkpoint.Model.ReadInto(parameters, allowUnused: false, cancellationToken);
        Optimizer.LoadState(optimizerFile, cancellationToken);
        Step = step;
        TrainedTokens = tokens;
        LastCheckpointStep = step;
        if (seed != Options.Seed)
        {
            _logger.OptionDiffers("seed", seed.ToString(CultureInfo.InvariantCulture), Options.Seed.ToString(CultureInfo.InvariantCulture),
                "continuing with the checkpoint's seed");
        }
        Seed = seed;
        WarnAboutChangedOptions(state["options"] as JsonObject);
        var savedPoints = state["loss_curve"] is JsonObject curve && curve["points"] is JsonValue points
            && points.TryGetValue<int>(out var count) ? count : 0;
        LossCurve = ReloadLossCurve(step, savedPoints);
        _logger.Resumed(checkpoint.Path, step, seed, LossCurve.Points.Count,
            checkpoint.IsRecovered ? " (recovered from the backup of an interrupted save)" : "");
    }

    /// <summary>Frees the optimizer's moments and the loss accumulator; the model and data are untouched. Calling
    /// it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        Optimizer.Dispose();
        _stepLoss.Dispose();
    }

    /// <summary>One optimizer step: the micro-batches' forward and backward passes, then AdamW.</summary>
    /// <returns>The step's trained tokens.</returns>
    private long TrainStep(long step, float learningRate, bool reported)
    {
        var module = _model.Module;
        var context = module.Context;
        var batch = _data.GetTrainingBatch(step - 1, Options.BatchSize);
        if (batch.BatchSize != Options.BatchSize || batch.SequenceLength != _data.SequenceLength)
        {
            throw new InvalidOperationException(
                $"Training batch {step - 1} is {batch.BatchSize} x {batch.SequenceLength}; the trainer asked for {Options.BatchSize} x {_data.SequenceLength}.");
        }
        var microBatches = Options.AccumulationSteps;
        var rows = Options.MicroBatchSize;
        long total = batch.TargetCount;
        module.Train();
        module.ZeroGrad();
        for (var i = 0; i < microBatches; i++)
        {
            var part = microBatches == 1 ? batch : Rows(batch, i * rows, rows);
            var share = total == 0 ? 0.0 : (double)part.TargetCount / total;
            var backwardScale = (float)(share * microBatches);
            using var tape = new GradientTape();
            Dropout.SeedAll(module, DropoutSeed(Seed, step, i));
            var loss = _model.Loss(part, Options.Loss with { Seed = SamplerSeed(Seed, step, i) });
            if (backwardScale == 1f)
            {
                tape.Backward(loss);
            }
            else
            {
                var seedGradient = Tensor.Create(context, Dtype.F32, [.. loss.Shape]);
                seedGradient.Fill(backwardScale);
                tape.Backward(loss, seedGradient);
            }
            if (reported)
            {
                Ops.Axpby(context, (float)share, loss.Value, i == 0 ? 0f : 1f, _stepLoss);
            }
        }
        Optimizer.Step(learningRate, 1f / microBatches, computeGradientNorm: reported);
        return total;
    }

    private float ReadStepLoss()
    {
        Span<float> value = stackalloc float[1];
        _stepLoss.CopyTo(value);
        return value[0];
    }

    private static TokenBatch Rows(TokenBatch batch, int start, int count)
    {
        var length = batch.SequenceLength;
        return new TokenBatch(count, length,
            batch.Inputs.AsSpan(start * length, count * length).ToArray(),
            batch.Targets.AsSpan(start * length, count * length).ToArray());
    }

    private JsonObject StateJson() => new()
    {
        ["format"] = StateFormatName,
        ["version"] = StateFormatVersion,
        ["step"] = Step,
        ["seed"] = Seed,
        ["trained_tokens"] = TrainedTokens,
        ["loss_curve"] = new JsonObject
        {
            ["file"] = LossCurveCsvFileName,
            ["points"] = LossCurve.Points.Count,
            ["last_step"] = LossCurve.Points.Count > 0 ? LossCurve.Points[^1].Step : 0,
        },
        ["options"] = new JsonObject
        {
            ["steps"] = Options.Steps,
            ["batch_size"] = Options.BatchSize,
            ["accumulation_steps"] = Options.AccumulationSteps,
            ["learning_rate"] = Options.LearningRate,
            ["schedule"] = Options.Schedule.ToString(),
            ["warmup_steps"] = Options.WarmupSteps,
            ["min_learning_rate"] = Options.MinLearningRate,
            ["model_dimension"] = Options.ModelDimension,
            ["weight_decay"] = Options.WeightDecay,
            ["beta1"] = Options.Betas.Beta1,
            ["beta2"] = Options.Betas.Beta2,
            ["epsilon"] = Options.Epsilon,
            ["max_grad_norm"] = Options.MaxGradNorm,
            ["loss"] = Options.Loss.Kind.ToString(),
            ["samples"] = Options.Loss.Samples,
        },
    };

    /// <summary>Warns about the saved options whose change makes the resumed run differ from an uninterrupted one.</summary>
    private void WarnAboutChangedOptions(JsonObject? saved)
    {
        if (saved is null)
        {
            return;
        }
        Compare("batch_size", Options.BatchSize.ToString(CultureInfo.InvariantCulture), "the batches differ from the interrupted run's");
        Compare("accumulation_steps", Options.AccumulationSteps.ToString(CultureInfo.InvariantCulture), "the micro-batches and their seeds differ");
        Compare("steps", Options.Steps.ToString(CultureInfo.InvariantCulture), "the learning-rate schedule may differ");
        Compare("schedule", Options.Schedule.ToString(), "the learning rates differ");
        Compare("loss", Options.Loss.Kind.ToString(), "the training loss differs");

        void Compare(string key, string current, string consequence)
        {
            if (saved[key] is JsonValue value && value.ToJsonString().Trim('"') is var text && text != current)
            {
                _logger.OptionDiffers(key, text, current, consequence);
            }
        }
    }

    /// <summary>The loss curve of the CSV beside the checkpoint, without the points after <paramref name="step"/>;
    /// warns when it has fewer points than the checkpoint recorded.</summary>
    private LossCurve ReloadLossCurve(long step, int savedPoints)
    {
        if (LossCurveCsvPath is null || !File.Exists(LossCurveCsvPath))
        {
            if (savedPoints > 0 && LossCurveCsvPath is not null)
            {
                _logger.LossCurveIncomplete(LossCurveCsvPath, "the file does not exist");
            }
            return new LossCurve();
        }
        try
        {
            var curve = LossCurve.LoadCsv(LossCurveCsvPath);
            curve.TruncateAfter(step);
            if (curve.Points.Count < savedPoints)
            {
                _logger.LossCurveIncomplete(LossCurveCsvPath,
                    $"it has {curve.Points.Count} points up to step {step}, the checkpoint recorded {savedPoints}");
            }
            return curve;
        }
        catch (InvalidDataException e)
        {
            _logger.LossCurveIncomplete(LossCurveCsvPath, e.Message);
            return new LossCurve();
        }
    }

    private void WriteLossCurve()
    {
        if (LossCurveCsvPath is null || LossCurvePngPath is null)
        {
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(LossCurveCsvPath)!);
        LossCurve.SaveCsv(LossCurveCsvPath);
        LossCurve.SavePng(LossCurvePngPath, "Training loss");
    }

    private static string? ReadString(JsonObject state, string key) =>
        state[key] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static long ReadLong(JsonObject state, string key, string path)
    {
        if (state[key] is JsonValue value && value.TryGetValue<long>(out var number) && number >= 0)
        {
            return number;
        }
        throw new CheckpointException(path, $"invalid trainer state: \"{key}\" is not a non-negative integer");
    }
}
