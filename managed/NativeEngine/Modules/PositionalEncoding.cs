using NativeEngine.Autograd;

namespace NativeEngine.Modules;

/// <summary>Position vectors added to token embeddings: rows <c>start .. start + length - 1</c> of a
/// [max length, C] table.</summary>
public abstract class PositionalEncoding : Module
{
    /// <summary>Creates the base of a positional encoding.</summary>
    /// <param name="context">The context of the table.</param>
    /// <param name="maxLength">The number of positions, &gt;= 1.</param>
    /// <param name="dimension">C.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    protected PositionalEncoding(Context context, int maxLength, int dimension) : base(context)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        MaxLength = maxLength;
        Dimension = dimension;
    }

    /// <summary>The number of positions.</summary>
    public int MaxLength { get; }

    /// <summary>C.</summary>
    public int Dimension { get; }

    /// <summary>The vectors of positions <paramref name="start"/> to <paramref name="start"/> +
    /// <paramref name="length"/> - 1, [length, C], to be added (broadcast over the batch) to the embeddings.</summary>
    /// <param name="start">The first position (the number of tokens already decoded, when decoding).</param>
    /// <param name="length">The number of positions.</param>
    /// <returns>A view of the table. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The positions exceed <see cref="MaxLength"/>.</exception>
    public Variable Forward(long start, long length)
    {
        if (start < 0 || length < 1 || start + length > MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length),
                $"Positions [{start}, {start + length}) exceed the {MaxLength} positions of the encoding (the model's maximum sequence length).");
        }
        return ForwardCore(start, length);
    }

    /// <summary>The rows of the validated positions.</summary>
    /// <param name="start">The first position.</param>
    /// <param name="length">The number of positions.</param>
    /// <returns>[length, C].</returns>
    protected abstract Variable ForwardCore(long start, long length);
}

/// <summary>Learned absolute positions (GPT-2's <c>wpe</c>): a trained [max length, C] parameter, initialized
/// N(0, std). The forward pass is a view of its rows (<see cref="Fn.Narrow"/>), no copy.</summary>
public sealed class LearnedPositionalEmbedding : PositionalEncoding
{
    /// <summary>Creates the table (zero-filled until initialized).</summary>
    /// <param name="context">The context of the table.</param>
    /// <param name="maxLength">The number of positions.</param>
    /// <param name="dimension">C.</param>
    /// <param name="std">The standard deviation of the initialization.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns it and disposes it.</remarks>
    public LearnedPositionalEmbedding(Context context, int maxLength, int dimension, float std = 0.02f)
        : base(context, maxLength, dimension)
    {
        Weight = RegisterParameter("weight", new Parameter(context, [maxLength, dimension], ParameterInit.Normal(std)));
    }

    /// <summary>The table, [max length, C].</summary>
    public Parameter Weight { get; }

    /// <inheritdoc />
    protected override Variable ForwardCore(long start, long length) => Fn.Narrow(Weight, start, length);
}

/// <summary>The fixed sinusoidal encoding of "Attention Is All You Need":
/// <c>PE(p, 2i) = sin(p / 10000^(2i / C))</c>, <c>PE(p, 2i + 1) = cos(p / 10000^(2i / C))</c>. The table is
/// computed once on the host (in double, rounded to f32), uploaded, and not trained.</summary>
public sealed class SinusoidalPositionalEncoding : PositionalEncoding
{
    private readonly Tensor _table;

    /// <summary>Computes and uploads the table.</summary>
    /// <param name="context">The context of the table.</param>
    /// <param name="maxLength">The number of positions.</param>
    /// <param name="dimension">C.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns it and disposes it.</remarks>
    public SinusoidalPositionalEncoding(Context context, int maxLength, int dimension) : base(context, maxLength, dimension)
    {
        _table = RegisterBuffer(Tensor.FromArray<float>(context, ComputeTable(maxLength, dimension), maxLength, dimension));
    }

    /// <summary>The table, [max length, C] (owned by the module).</summary>
    public Tensor Values => _table;

    /// <summary>Computes the sinusoidal table on the host, row-major [maxLength, dimension].</summary>
    /// <param name="maxLength">The number of positions.</param>
    /// <param name="dimension">C.</param>
    /// <returns>The values.</returns>
    public static float[] ComputeTable(int maxLength, int dimension)
    {
        var values = new float[(long)maxLength * dimension];
        for (var p = 0; p < maxLength; p++)
        {
            for (var c = 0; c < dimension; c++)
            {
                var pair = c / 2 * 2;
                var angle = p / Math.Pow(10000.0, (double)pair / dimension);
                values[(long)p * dimension + c] = (float)(c % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
            }
        }
        return values;
    }

    /// <inheritdoc />
    protected override Variable ForwardCore(long start, long length) =>
        new(_table.View(start * Dimension, [length, Dimension]));
}
