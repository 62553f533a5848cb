namespace NativeEngine.Data;

/// <summary>Options of <see cref="TextDataset"/>.</summary>
public sealed record TextDatasetOptions
{
    /// <summary>The positions of every batch row (T), &gt;= 1: a window holds T + 1 tokens (the inputs and,
    /// shifted by one, the targets). Default: 128.</summary>
    public int SequenceLength { get; init; } = 128;

    /// <summary>The fraction of the tokens, taken from the end of the text, held out for validation;
    /// strictly between 0 and 1. Default: 0.1.</summary>
    public double ValidationFraction { get; init; } = 0.1;

    /// <summary>The seed of the window positions. Default: 0.</summary>
    public long Seed { get; init; }
}
