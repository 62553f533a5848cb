using NativeEngine.Data;

namespace NativeEngine.Training;

/// <summary>
/// Where a <see cref="Trainer"/> gets its batches: training batch k for optimizer step k + 1, and a fixed list of
/// evaluation batches.
/// </summary>
/// <remarks>Implementations must be deterministic: training batch k must depend only on (k, batch size) and the
/// source's own seed, so that a resumed run sees the batches it would have seen without the interruption, and
/// evaluation batch i must be the same every time. <see cref="ReversalTaskData"/> and <see cref="TextDatasetData"/>
/// adapt the built-in data sets.</remarks>
public interface ITrainingData
{
    /// <summary>The positions of every batch row (T); the model must accept sequences this long.</summary>
    int SequenceLength { get; }

    /// <summary>Training batch <paramref name="index"/>.</summary>
    /// <param name="index">The batch index, &gt;= 0 (the trainer passes step - 1).</param>
    /// <param name="batchSize">Rows, &gt;= 1.</param>
    /// <returns>A [<paramref name="batchSize"/>, <see cref="SequenceLength"/>] batch.</returns>
    TokenBatch GetTrainingBatch(long index, int batchSize);

    /// <summary>The number of evaluation batches of <paramref name="batchSize"/> rows: <see cref="int.MaxValue"/>
    /// when the source can draw any number of them.</summary>
    /// <param name="batchSize">Rows per batch, &gt;= 1.</param>
    /// <returns>The count, &gt;= 0.</returns>
    int EvaluationBatchCount(int batchSize);

    /// <summary>Evaluation batch <paramref name="index"/>, disjoint from the training data.</summary>
    /// <param name="index">0 to <see cref="EvaluationBatchCount"/> - 1.</param>
    /// <param name="batchSize">Rows, &gt;= 1 (the last batch of a finite set may have fewer).</param>
    /// <returns>A batch of <see cref="SequenceLength"/> positions per row.</returns>
    TokenBatch GetEvaluationBatch(int index, int batchSize);
}

/// <summary>The sequence-reversal task as training data: training batches from
/// <see cref="ReversalTask.GetTrainingBatch"/>, evaluation on the held-out examples.</summary>
/// <param name="task">The task.</param>
public sealed class ReversalTaskData(ReversalTask task) : ITrainingData
{
    /// <summary>The task.</summary>
    public ReversalTask Task { get; } = task ?? throw new ArgumentNullException(nameof(task));

    /// <inheritdoc />
    public int SequenceLength => Task.SequenceLength;

    /// <inheritdoc />
    public TokenBatch GetTrainingBatch(long index, int batchSize) => Task.GetTrainingBatch(index, batchSize);

    /// <inheritdoc />
    public int EvaluationBatchCount(int batchSize) => Task.HeldOutBatchCount(batchSize);

    /// <inheritdoc />
    public TokenBatch GetEvaluationBatch(int index, int batchSize) => Task.GetHeldOutBatch(index, batchSize);
}

/// <summary>A text data set as training data: random windows of the training tokens, evaluation on windows of
/// the validation tokens (any number of batches).</summary>
/// <param name="dataset">The data set.</param>
public sealed class TextDatasetData(TextDataset dataset) : ITrainingData
{
    /// <summary>The data set.</summary>
    public TextDataset Dataset { get; } = dataset ?? throw new ArgumentNullException(nameof(dataset));

    /// <inheritdoc />
    public int SequenceLength => Dataset.SequenceLength;

    /// <inheritdoc />
    public TokenBatch GetTrainingBatch(long index, int batchSize) => Dataset.GetTrainingBatch(index, batchSize);

    /// <inheritdoc />
    public int EvaluationBatchCount(int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        return int.MaxValue;
    }

    /// <inheritdoc />
    public TokenBatch GetEvaluationBatch(int index, int batchSize) => Dataset.GetValidationBatch(index, batchSize);
}
