using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using NativeEngine.Autograd;
using NativeEngine.Checkpoints;
using NativeEngine.Models;
using NativeEngine.Tests.Support;
using NativeEngine.Training;

namespace NativeEngine.Tests.Training;

public sealed class TrainerTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData(0f, false)]
    [InlineData(0.1f, false)]
    [InlineData(0.1f, true)]
    public void AResumedRunEqualsTheUninterruptedRunBitForBit(float dropout, bool sampled)
    {
        var options = TrainingRun.BaseOptions with
        {
            CheckpointEvery = 10,
            EvalEvery = 10,
            Loss = sampled ? new LossOptions(LossKind.Sampled, Samples: 4) : LossOptions.Full,
        };
        var straightReports = new ProgressRecorder();
        Dictionary<string, float[]> straightParameters;
        using (var straight = new TrainingRun(options with { CheckpointDirectory = _temp.File("straight", "checkpoint") }, dropout))
        {
            straight.Trainer.Run(straightReports, Ct);
            straightParameters = straight.Model.Snapshot();
        }

        var resumedDirectory = _temp.File("resumed", "checkpoint");
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var firstHalf = new ProgressRecorder(report =>
        {
            if (report.Step == 10)
            {
                cancellation.Cancel();
            }
        });
        using (var interrupted = new TrainingRun(options with { CheckpointDirectory = resumedDirectory }, dropout))
        {
            Assert.Throws<OperationCanceledException>(() => interrupted.Trainer.Run(firstHalf, cancellation.Token));
            Assert.Equal(10, interrupted.Trainer.Step);
        }
        var secondHalf = new ProgressRecorder();
        Dictionary<string, float[]> resumedParameters;
        using (var resumed = new TrainingRun(options with { CheckpointDirectory = resumedDirectory }, dropout, initSeed: 12345))
        {
            Assert.True(resumed.Trainer.TryResume(Ct));
            Assert.Equal(10, resumed.Trainer.Step);
            Assert.Equal(10, resumed.Trainer.Optimizer.StepCount);
            var result = resumed.Trainer.Run(secondHalf, Ct);
            Assert.Equal((11L, 20L), (result.FirstStep, result.LastStep));
            resumedParameters = resumed.Model.Snapshot();
        }

        var combined = firstHalf.Reports.Concat(secondHalf.Reports).ToList();
        Assert.Equal(Enumerable.Range(1, 20).Select(s => (long)s), combined.Select(r => r.Step));
        Assert.Equal(straightReports.Reports.Select(r => r.Step), combined.Select(r => r.Step));
        Assert.Equal(straightReports.Reports.Select(r => Bits(r.Loss)), combined.Select(r => Bits(r.Loss)));
        Assert.Equal(straightReports.Reports.Select(r => Bits(r.GradientNorm)), combined.Select(r => Bits(r.GradientNorm)));
        Assert.Equal(straightReports.Reports.Select(r => r.EvalLoss.HasValue ? Bits(r.EvalLoss.Value) : 0),
            combined.Select(r => r.EvalLoss.HasValue ? Bits(r.EvalLoss.Value) : 0));
        foreach (var (name, values) in straightParameters)
        {
            Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), resumedParameters[name].Select(BitConverter.SingleToInt32Bits));
        }
        // The loss curve beside the checkpoint continues across the resume: one point per step, the same losses.
        var curve = LossCurve.LoadCsv(_temp.File("resumed", Trainer.LossCurveCsvFileName));
        Assert.Equal(straightReports.Reports.Select(r => (r.Step, Bits(r.Loss), r.EvalLoss)),
            curve.Points.Select(p => (p.Step, Bits(p.TrainLoss), p.EvalLoss)));
        Assert.True(new FileInfo(_temp.File("resumed", Trainer.LossCurvePngFileName)).Length > 0);
    }

    [Fact]
    public void DropoutAndSampledSoftmaxDrawFromTheRunSeed()
    {
        double FirstLoss(TrainerOptions options, float dropout)
        {
            using var run = new TrainingRun(options with { Steps = 1 }, dropout);
            return run.Trainer.Run(null, Ct).FinalLoss!.Value;
        }
        var full = TrainingRun.BaseOptions;
        var sampled = full with { Loss = new LossOptions(LossKind.Sampled, Samples: 3) };
        Assert.Equal(FirstLoss(full, 0f), FirstLoss(full with { Seed = 1 }, 0f));
        Assert.NotEqual(FirstLoss(full, 0.3f), FirstLoss(full with { Seed = 1 }, 0.3f));
        Assert.NotEqual(FirstLoss(sampled, 0f), FirstLoss(sampled with { Seed = 1 }, 0f));
        Assert.Equal(FirstLoss(sampled, 0.3f), FirstLoss(sampled, 0.3f));
    }

    [Fact]
    public void TwoAccumulatedHalfBatchesEqualOneFullBatch()
    {
        // The halves of the first batch hold different numbers of trained tokens: the loss and the gradient are
        // the token-weighted mean, not the mean of the two halves' means.
        var first = TrainingRun.Task.GetTrainingBatch(0, 8);
        Assert.NotEqual(first.Targets.AsSpan(0, 44).ToArray().Count(t => t >= 0), first.Targets.AsSpan(44).ToArray().Count(t => t >= 0));
        // Epsilon 1: the update grows with the gradient instead of following its sign, so a wrong scale shows.
        var options = TrainingRun.BaseOptions with { Steps = 3, Epsilon = 1f, MaxGradNorm = 0f, LearningRate = 0.5 };
        var whole = new ProgressRecorder();
        var halves = new ProgressRecorder();
        Dictionary<string, float[]> wholeParameters, halvesParameters;
        using (var run = new TrainingRun(options))
        {
            run.Trainer.Run(whole, Ct);
            wholeParameters = run.Model.Snapshot();
        }
        using (var run = new TrainingRun(options with { AccumulationSteps = 2 }))
        {
            run.Trainer.Run(halves, Ct);
            halvesParameters = run.Model.Snapshot();
        }

        Assert.Equal(3, halves.Reports.Count);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(whole.Reports[i].Loss, halves.Reports[i].Loss, 1e-6 * whole.Reports[i].Loss);
            Assert.Equal(whole.Reports[i].GradientNorm, halves.Reports[i].GradientNorm, 1e-5 * whole.Reports[i].GradientNorm);
        }
        var moved = 0.0;
        foreach (var (name, expected) in wholeParameters)
        {
            for (var j = 0; j < expected.Length; j++)
            {
                Assert.Equal(expected[j], halvesParameters[name][j], 2e-6);
            }
        }
        using (var reference = new TrainingRun(options))
        {
            foreach (var (name, initial) in reference.Model.Snapshot())
            {
                moved = Math.Max(moved, initial.Zip(wholeParameters[name]).Max(p => Math.Abs(p.First - p.Second)));
            }
        }
        Assert.True(moved > 1e-3, $"The parameters moved by at most {moved}; the comparison would prove nothing.");
    }

    [Fact]
    public void ProgressReportsIncreaseAndEvaluationIsTheFullSoftmaxPerplexity()
    {
        var logger = new ListLogger();
        var options = TrainingRun.BaseOptions with { Steps = 12, LogEvery = 4, EvalEvery = 6, EvalBatches = 3, AccumulationSteps = 2 };
        var recorder = new ProgressRecorder();
        using var run = new TrainingRun(options with { Loss = new LossOptions(LossKind.Sampled, 3) }, dropout: 0.1f, logger: logger);

        var result = run.Trainer.Run(recorder, Ct);

        Assert.Equal([4L, 6, 8, 12], recorder.Reports.Select(r => r.Step));
        Assert.All(recorder.Reports, r => Assert.Equal(12, r.TotalSteps));
        Assert.All(recorder.Reports, r => Assert.Equal(run.Trainer.Schedule.GetLearningRate(r.Step), r.LearningRate));
        Assert.All(recorder.Reports, r => Assert.True(r.TokensPerSecond > 0 && double.IsFinite(r.Loss) && r.GradientNorm > 0));
        Assert.Equal([false, true, false, true], recorder.Reports.Select(r => r.Evaluation is not null));
        Assert.True(recorder.Reports.Zip(recorder.Reports.Skip(1)).All(p => p.Second.Elapsed >= p.First.Elapsed));
        foreach (var report in recorder.Reports.Where(r => r.Evaluation is not null))
        {
            Assert.Equal(Math.Exp(report.EvalLoss!.Value), report.EvalPerplexity);
            Assert.Equal(3, report.Evaluation!.Batches);
        }
        Assert.True(run.Model.IsTraining);

        // An independent evaluation: the full softmax without dropout and without a tape, weighted by tokens.
        var rows = options.BatchSize / options.AccumulationSteps;
        double sum = 0;
        long tokens = 0;
        run.Model.Eval();
        using (GradientTape.NoGrad())
        {
            for (var index = 0; index < 3; index++)
            {
                using var scope = new TensorScope();
                var batch = TrainingRun.Task.GetHeldOutBatch(index, rows);
                sum += (double)run.Model.Loss(batch, LossOptions.Full).Item() * batch.TargetCount;
                tokens += batch.TargetCount;
            }
        }
        run.Model.Train();
        var final = recorder.Reports[^1];
        Assert.Equal(sum / tokens, final.EvalLoss!.Value, 1e-12);
        Assert.Equal(tokens, final.Evaluation!.Tokens);
        Assert.Equal(final.EvalLoss, run.Trainer.Evaluate().Loss);
        Assert.Equal((1L, 12L, final.Loss), (result.FirstStep, result.LastStep, result.FinalLoss));
        Assert.Same(final.Evaluation, result.FinalEvaluation);

        Assert.Equal(recorder.Reports.Select(r => (r.Step, r.Loss, r.EvalLoss)), run.Trainer.LossCurve.Points.Select(p => (p.Step, p.TrainLoss, p.EvalLoss)));
        Assert.Equal(4, logger.Entries.Count(e => e.EventId == 2));
        Assert.Equal(2, logger.Entries.Count(e => e.EventId == 3));
        Assert.Contains(logger.Entries, e => e.Message.StartsWith("Step 12/12: loss ", StringComparison.Ordinal));
        Assert.DoesNotContain(logger.Entries, e => e.Level >= LogLevel.Warning);
        Assert.Empty(_temp.Entries());
    }

    [Fact]
    public void CancelingLeavesTheLastCheckpointLoadableAndUnchanged()
    {
        var directory = _temp.File("run", "checkpoint");
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        Dictionary<string, string>? hashesAtStep4 = null;
        var recorder = new ProgressRecorder(report =>
        {
            if (report.Step == 4)
            {
                hashesAtStep4 = Hashes(directory);
            }
            if (report.Step == 5)
            {
                cancellation.Cancel();
            }
        });
        var logger = new ListLogger();
        using (var run = new TrainingRun(TrainingRun.BaseOptions with { CheckpointEvery = 3, CheckpointDirectory = directory }, logger: logger))
        {
            Assert.Throws<OperationCanceledException>(() => run.Trainer.Run(recorder, cancellation.Token));
            Assert.Equal(5, run.Trainer.Step);
            Assert.Equal(3, run.Trainer.LastCheckpointStep);
            Assert.Equal([false, false, true, false, false], recorder.Reports.Select(r => r.CheckpointSaved));

            // A save that is canceled before its swap leaves the checkpoint of step 3 as well.
            Assert.ThrowsAny<OperationCanceledException>(() => run.Trainer.SaveCheckpoint(cancellation.Token));
        }

        Assert.Equal(hashesAtStep4, Hashes(directory));
        Assert.Equal(["checkpoint", Trainer.LossCurveCsvFileName, Trainer.LossCurvePngFileName], _temp.Entries(_temp.File("run")));
        Assert.Contains(logger.Entries, e => e.Level == LogLevel.Warning && e.Message == "Canceled after step 5; the last checkpoint (step 3) is left as it was");
        using (var checkpoint = CheckpointDirectory.Load(directory))
        {
            Assert.Equal(3, checkpoint.TrainerState["step"]!.GetValue<long>());
            Assert.Equal("tiny", checkpoint.Config["model"]!.GetValue<string>());
        }
        using var resumed = new TrainingRun(TrainingRun.BaseOptions with { CheckpointEvery = 3, CheckpointDirectory = directory });
        Assert.True(resumed.Trainer.TryResume(Ct));
        Assert.Equal(3, resumed.Trainer.Step);
        // The curve beside the checkpoint had points up to step 5; the resume keeps those of steps 1 to 3.
        Assert.Equal([1L, 2, 3], resumed.Trainer.LossCurve.Points.Select(p => p.Step));
    }

    [Theory]
    [InlineData(CheckpointDirectory.ModelFileName, false, "checksum mismatch")]
    [InlineData(CheckpointDirectory.OptimizerFileName, true, "truncated")]
    [InlineData(CheckpointDirectory.TrainerStateFileName, false, "checksum mismatch")]
    public void ADamagedCheckpointIsRefusedAndNothingIsChanged(string file, bool truncate, string problem)
    {
        var directory = _temp.File("run", "checkpoint");
        using (var run = new TrainingRun(TrainingRun.BaseOptions with { Steps = 2, CheckpointDirectory = directory }))
        {
            run.Trainer.Run(null, Ct);
        }
        var path = Path.Combine(directory, file);
        var bytes = File.ReadAllBytes(path);
        if (truncate)
        {
            File.WriteAllBytes(path, bytes[..^9]);
        }
        else
        {
            bytes[bytes.Length / 2] ^= 0x10;
            File.WriteAllBytes(path, bytes);
        }
        var damaged = Hashes(directory);
        using var fresh = new TrainingRun(TrainingRun.BaseOptions with { Steps = 2, CheckpointDirectory = directory }, initSeed: 3);
        var parameters = fresh.Model.Snapshot();

        var error = Assert.Throws<CheckpointException>(() => fresh.Trainer.TryResume(Ct));

        Assert.Equal(path, error.Path);
        Assert.StartsWith($"{path}: {problem}", error.Message, StringComparison.Ordinal);
        Assert.Equal(damaged, Hashes(directory));
        Assert.Equal(0, fresh.Trainer.Step);
        Assert.Equal(0, fresh.Trainer.Optimizer.StepCount);
        foreach (var (name, values) in fresh.Model.Snapshot())
        {
            Assert.Equal(parameters[name], values);
        }
    }

    [Fact]
    public void ACheckpointOfAnotherModelIsRefusedBeforeAnythingIsLoaded()
    {
        var directory = _temp.File("run", "checkpoint");
        using (var run = new TrainingRun(TrainingRun.BaseOptions with { Steps = 1, CheckpointDirectory = directory }))
        {
            run.Trainer.Run(null, Ct);
        }
        using var context = Context.Create(new ContextOptions { NumThreads = 1 });
        using var wider = new TinyLanguageModel(context, TrainingRun.Task.VocabSize, TrainingRun.Task.SequenceLength, dimension: 8, heads: 2);
        using var trainer = new Trainer(wider, new ReversalTaskData(TrainingRun.Task), TrainingRun.BaseOptions with { CheckpointDirectory = directory });
        var parameters = wider.Snapshot();

        var error = Assert.Throws<CheckpointException>(() => trainer.TryResume(Ct));

        Assert.EndsWith(CheckpointDirectory.OptimizerFileName, error.Path, StringComparison.Ordinal);
        Assert.Contains("does not match this model's parameters", error.Message);
        Assert.Equal(0, trainer.Step);
        foreach (var (name, values) in wider.Snapshot())
        {
            Assert.Equal(parameters[name], values);
        }
    }

    [Fact]
    public void NativeMemoryDoesNotGrowWithStepsAndIsReleasedOnDispose()
    {
        var directory = _temp.File("run", "checkpoint");
        var options = TrainingRun.BaseOptions with
        {
            Steps = 8, AccumulationSteps = 2, EvalEvery = 2, CheckpointEvery = 4, CheckpointDirectory = directory,
            Loss = new LossOptions(LossKind.Sampled, 3),
        };
        using (var first = new TrainingRun(options with { Steps = 4 }, dropout: 0.1f))
        {
            first.Trainer.Run(null, Ct);
        }
        using var run = new TrainingRun(options, dropout: 0.1f);
        var parameterTensors = run.Model.Parameters().Count();
        Assert.True(run.Trainer.TryResume(Ct));
        var live = new List<long>();
        run.Trainer.Run(new ProgressRecorder(_ => live.Add(run.Context.GetMemoryStats().LiveTensors)), Ct);
        Assert.Equal(4, live.Count);
        Assert.All(live, count => Assert.Equal(live[0], count));

        run.Trainer.Dispose();
        // What is left: each parameter's value and gradient.
        Assert.Equal(2 * parameterTensors, run.Context.GetMemoryStats().LiveTensors);
        run.Model.Dispose();
        Assert.Equal(0, run.Context.GetMemoryStats().LiveTensors);
    }

    // On a device (NE_BACKEND=cuda, as the GPU harness runs this suite): steps that are not reported make the host
    // wait for nothing, ids and targets being checked on the device and the batches uploaded without waiting; the
    // last step reads its loss and gradient norm, two waits.
    [Theory]
    [InlineData(false, 1)]
    [InlineData(true, 2)]
    public void StepsBetweenReportsMakeNoHostWait(bool sampled, int accumulationSteps)
    {
        var options = TrainingRun.BaseOptions with
        {
            Steps = 12, LogEvery = 100, AccumulationSteps = accumulationSteps,
            Loss = sampled ? new LossOptions(LossKind.Sampled, 4) : LossOptions.Full,
        };
        using var run = new TrainingRun(options, dropout: 0.1f);
        if (run.Context.Backend == Backend.Cpu)
        {
            Assert.Skip("Needs a device backend (NE_BACKEND=cuda on a GPU machine): the CPU never waits.");
        }
        var result = run.Trainer.Run(null, Ct);
        Assert.Equal(2, result.HostWaits);
        Assert.Equal(0, run.Context.GetActivity().PendingChecks);
    }

    [Fact]
    public void WithoutACheckpointTryResumeStartsFresh()
    {
        using var run = new TrainingRun(TrainingRun.BaseOptions with { CheckpointDirectory = _temp.File("none", "checkpoint") });
        Assert.False(run.Trainer.TryResume(Ct));
        Assert.Equal(0, run.Trainer.Step);
        using var noDirectory = new TrainingRun(TrainingRun.BaseOptions);
        Assert.False(noDirectory.Trainer.TryResume(Ct));
        Assert.Throws<InvalidOperationException>(() => noDirectory.Trainer.SaveCheckpoint(Ct));
    }

    [Fact]
    public void InvalidOptionsAreRefusedWithTheirName()
    {
        void Refused(TrainerOptions options, string name) =>
            Assert.Contains(name, Assert.Throws<ArgumentException>(() => options.Validate()).Message);
        var options = TrainingRun.BaseOptions;
        Refused(options with { Steps = 0 }, "Steps");
        Refused(options with { AccumulationSteps = 3 }, "AccumulationSteps");
        Refused(options with { WarmupSteps = 21 }, "WarmupSteps");
        Refused(options with { Loss = new LossOptions(LossKind.Sampled, 0) }, "Loss.Samples");
        Refused(options with { Betas = (0.9f, 1f) }, "Beta2");
        Refused(options with { LogEvery = 0 }, "LogEvery");
        Refused(options with { CheckpointDirectory = "" }, "CheckpointDirectory");
        using var context = Context.Create(new ContextOptions { NumThreads = 1 });
        using var shortModel = new TinyLanguageModel(context, TrainingRun.Task.VocabSize, maxSequenceLength: 4);
        var error = Assert.Throws<ArgumentException>(() => new Trainer(shortModel, new ReversalTaskData(TrainingRun.Task), options));
        Assert.Contains("11 positions", error.Message);
        using var model = new TinyLanguageModel(context, TrainingRun.Task.VocabSize, TrainingRun.Task.SequenceLength);
        error = Assert.Throws<ArgumentException>(() => new Trainer(model, new ReversalTaskData(TrainingRun.Task),
            options with { Loss = new LossOptions(LossKind.Sampled, 10) }));
        Assert.Contains("Loss.Samples is 10; the model's vocabulary has 9 classes", error.Message);
    }

    private static long Bits(double value) => BitConverter.DoubleToInt64Bits(value);

    private static Dictionary<string, string> Hashes(string directory) =>
        Directory.EnumerateFiles(directory).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));
}
