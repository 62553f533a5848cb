namespace NativeEngine.Data;

/// <summary>
/// A batch for a decoder-only language model, in host memory: <see cref="Inputs"/> and
/// <see cref="Targets"/>, both [<see cref="BatchSize"/>, <see cref="SequenceLength"/>] row-major.
/// Position t of a row is trained to predict <c>Targets[t]</c> from <c>Inputs[0..t]</c> (the next token);
/// a target of <see cref="IgnoreTarget"/> (-1) is not trained on (prompts, padding), as the
/// cross-entropy kernels ignore negative targets.
/// </summary>
/// <remarks>The arrays are handed out as they are, for uploading without a copy (such as
/// <c>Tensor.FromArray&lt;int&gt;(context, batch.Inputs, batch.BatchSize, batch.SequenceLength)</c>); do not
/// modify them.</remarks>
public sealed class TokenBatch
{
    /// <summary>The target of a position that is not trained on.</summary>
    public const int IgnoreTarget = -1;

    /// <summary>Creates a batch.</summary>
    /// <param name="batchSize">Rows, &gt;= 1.</param>
    /// <param name="sequenceLength">Positions per row, &gt;= 1.</param>
    /// <param name="inputs">[batchSize * sequenceLength] token ids; kept, not copied.</param>
    /// <param name="targets">[batchSize * sequenceLength] target ids or <see cref="IgnoreTarget"/>; kept, not copied.</param>
    /// <exception cref="ArgumentNullException">An array is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1.</exception>
    /// <exception cref="ArgumentException">An array's length is not <c>batchSize * sequenceLength</c>, or a
    /// target is negative but not <see cref="IgnoreTarget"/>.</exception>
    public TokenBatch(int batchSize, int sequenceLength, int[] inputs, int[] targets)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequenceLength, 1);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(targets);
        var count = (long)batchSize * sequenceLength;
        if (inputs.Length != count || targets.Length != count)
        {
            throw new ArgumentException(
                $"A batch of {batchSize} x {sequenceLength} needs {count} inputs and targets, got {inputs.Length} and {targets.Length}.");
        }
        var trained = 0;
        foreach (var target in targets)
        {
            if (target >= 0)
            {
                trained++;
            }
            else if (target != IgnoreTarget)
            {
                throw new ArgumentException($"Target {target} is negative but not IgnoreTarget ({IgnoreTarget}).", nameof(targets));
            }
        }
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
        Inputs = inputs;
        Targets = targets;
        TargetCount = trained;
    }

    /// <summary>The number of rows.</summary>
    public int BatchSize { get; }

    /// <summary>The number of positions per row.</summary>
    public int SequenceLength { get; }

    /// <summary>Input token ids, [<see cref="BatchSize"/>, <see cref="SequenceLength"/>] row-major.</summary>
    public int[] Inputs { get; }

    /// <summary>Target ids, same shape; <see cref="IgnoreTarget"/> where nothing is trained.</summary>
    public int[] Targets { get; }

    /// <summary>The number of trained positions (targets other than <see cref="IgnoreTarget"/>): the
    /// denominator of a mean loss, and the tokens of a tokens-per-second count.</summary>
    public int TargetCount { get; }

    /// <summary>The inputs of one row.</summary>
    /// <param name="row">0 to <see cref="BatchSize"/> - 1.</param>
    /// <returns>The row's <see cref="SequenceLength"/> inputs.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="row"/> is out of range.</exception>
    public ReadOnlySpan<int> InputRow(int row) => Inputs.AsSpan(RowStart(row), SequenceLength);

    /// <summary>The targets of one row.</summary>
    /// <param name="row">0 to <see cref="BatchSize"/> - 1.</param>
    /// <returns>The row's <see cref="SequenceLength"/> targets.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="row"/> is out of range.</exception>
    public ReadOnlySpan<int> TargetRow(int row) => Targets.AsSpan(RowStart(row), SequenceLength);

    /// <summary>Counts the rows whose every trained position is predicted exactly: with
    /// <paramref name="predictions"/> the argmax of the model's logits at every position (teacher forcing),
    /// a row counts when <c>predictions[i] == Targets[i]</c> wherever <c>Targets[i] != IgnoreTarget</c>.</summary>
    /// <param name="predictions">[<see cref="BatchSize"/> * <see cref="SequenceLength"/>] predicted ids.</param>
    /// <returns>The exact matches among the rows that have at least one trained position.</returns>
    /// <exception cref="ArgumentException"><paramref name="predictions"/> has the wrong length.</exception>
    public ExactMatchScore ScoreExactMatch(ReadOnlySpan<int> predictions)
    {
        if (predictions.Length != Targets.Length)
        {
            throw new ArgumentException(
                $"Expected {Targets.Length} predictions ({BatchSize} x {SequenceLength}), got {predictions.Length}.", nameof(predictions));
        }
        int correct = 0, total = 0;
        for (var row = 0; row < BatchSize; row++)
        {
            var targets = TargetRow(row);
            var predicted = predictions.Slice(row * SequenceLength, SequenceLength);
            var any = false;
            var all = true;
            for (var t = 0; t < targets.Length; t++)
            {
                if (targets[t] != IgnoreTarget)
                {
                    any = true;
                    all &= predicted[t] == targets[t];
                }
            }
            if (any)
            {
                total++;
                correct += all ? 1 : 0;
            }
        }
        return new ExactMatchScore(correct, total);
    }

    private int RowStart(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, BatchSize);
        return row * SequenceLength;
    }
}

/// <summary>An exact-match count: <see cref="Correct"/> of <see cref="Total"/> examples entirely right.</summary>
/// <param name="Correct">Examples whose whole answer is right.</param>
/// <param name="Total">Examples scored.</param>
public readonly record struct ExactMatchScore(int Correct, int Total)
{
    /// <summary><see cref="Correct"/> / <see cref="Total"/>, or 0 when nothing was scored.</summary>
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;

    /// <summary>The sum of two scores (such as those of several batches).</summary>
    /// <param name="a">A score.</param>
    /// <param name="b">Another score.</param>
    /// <returns>Correct and total added.</returns>
    public static ExactMatchScore operator +(ExactMatchScore a, ExactMatchScore b) => new(a.Correct + b.Correct, a.Total + b.Total);

    /// <summary>Describes the score, such as <c>37/64 (57.8%)</c>.</summary>
    /// <returns>The description.</returns>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Correct}/{Total} ({Accuracy:P1})");
}
