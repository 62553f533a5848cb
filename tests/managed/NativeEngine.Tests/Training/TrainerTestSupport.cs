using Microsoft.Extensions.Logging;
using NativeEngine.Data;
using NativeEngine.Training;

namespace NativeEngine.Tests.Training;

/// <summary>Collects progress reports synchronously and runs an optional action on each (such as canceling).</summary>
internal sealed class ProgressRecorder(Action<TrainingProgress>? onReport = null) : IProgress<TrainingProgress>
{
    public List<TrainingProgress> Reports { get; } = [];

    public void Report(TrainingProgress value)
    {
        Reports.Add(value);
        onReport?.Invoke(value);
    }
}

/// <summary>Keeps every log entry with its level, event id and formatted message.</summary>
internal sealed class ListLogger : ILogger
{
    public List<(LogLevel Level, int EventId, string Message)> Entries { get; } = [];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Add((logLevel, eventId.Id, formatter(state, exception)));
}

/// <summary>One training setup: a context of one thread (so that bits do not depend on the machine's cores), the
/// tiny model and a trainer on the reversal task. Disposing it frees everything.</summary>
internal sealed class TrainingRun : IDisposable
{
    /// <summary>Reversal of 2 to 5 symbols of 6: 9 ids, rows of 11 positions.</summary>
    public static readonly ReversalTask Task = new(new ReversalTaskOptions { AlphabetSize = 6, MinLength = 2, MaxLength = 5, HeldOutCount = 48, Seed = 5 });

    public static readonly TrainerOptions BaseOptions = new()
    {
        Steps = 20,
        BatchSize = 8,
        LearningRate = 1e-2,
        Schedule = LearningRateScheduleKind.WarmupCosine,
        WarmupSteps = 1,
        MinLearningRate = 1e-3,
        WeightDecay = 0.01f,
        MaxGradNorm = 1f,
        EvalBatches = 2,
        Seed = 77,
    };

    public TrainingRun(TrainerOptions options, float dropout = 0f, ulong initSeed = 1, ILogger? logger = null)
    {
        Context = Context.Create(new ContextOptions { NumThreads = 1 });
        Model = new TinyLanguageModel(Context, Task.VocabSize, Task.SequenceLength, dropout: dropout, seed: initSeed);
        Trainer = new Trainer(Model, new ReversalTaskData(Task), options,
            new System.Text.Json.Nodes.JsonObject { ["tokenizer"] = "byte", ["model"] = "tiny" }, logger);
    }

    public Context Context { get; }

    public TinyLanguageModel Model { get; }

    public Trainer Trainer { get; }

    public void Dispose()
    {
        Trainer.Dispose();
        Model.Dispose();
        Context.Dispose();
    }
}
