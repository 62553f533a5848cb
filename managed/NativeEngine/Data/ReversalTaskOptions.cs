namespace NativeEngine.Data;

/// <summary>Options of <see cref="ReversalTask"/>. The defaults: sequences of 4 to 12 symbols over an
/// alphabet of 16, 512 held-out examples, seed 0.</summary>
public sealed record ReversalTaskOptions
{
    /// <summary>The number of distinct symbols, 2 to 65535. Default: 16.</summary>
    public int AlphabetSize { get; init; } = 16;

    /// <summary>The shortest sequence, &gt;= 1. Default: 4.</summary>
    public int MinLength { get; init; } = 4;

    /// <summary>The longest sequence, <see cref="MinLength"/> to 4096. Default: 12.</summary>
    public int MaxLength { get; init; } = 12;

    /// <summary>The number of held-out examples, &gt;= 0 and at most half of the distinct sequences the
    /// options allow. Default: 512.</summary>
    public int HeldOutCount { get; init; } = 512;

    /// <summary>The seed of every random choice. Default: 0.</summary>
    public long Seed { get; init; }
}
