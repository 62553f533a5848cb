using NativeEngine.Autograd;

namespace NativeEngine.Inference;

/// <summary>
/// Chooses the next token from a vector of logits on the host: greedy, or sampled with temperature, top-k and
/// top-p from a seeded SplitMix64 stream (<see cref="Initialization.SplitMix64"/>), so a seed gives the same
/// tokens on every run and machine.
/// </summary>
/// <remarks>Sampling: the logits are divided by the temperature (in double), the candidates ordered by logit
/// (the lower id first among equals) and cut to the top k, their softmax computed, then cut to the fewest whose
/// probabilities sum to at least top-p; a uniform variate <c>u = (output &gt;&gt; 11) 2^-53</c> of the stream
/// picks the first candidate whose cumulative probability (renormalized) exceeds it.</remarks>
public sealed class TokenSampler
{
    private readonly GenerationOptions _options;
    private ulong _state;
    private int[] _order = [];
    private double[] _weights = [];

    /// <summary>Creates a sampler whose stream starts at <see cref="GenerationOptions.Seed"/>.</summary>
    /// <param name="options">The options (temperature, top-k, top-p, seed).</param>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    public TokenSampler(GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _state = options.Seed;
    }

    /// <summary>The arg max of <paramref name="logits"/>: the lowest id among the largest values.</summary>
    /// <param name="logits">The logits, at least one.</param>
    /// <returns>The id.</returns>
    /// <exception cref="ArgumentException"><paramref name="logits"/> is empty or holds a NaN.</exception>
    public static int Argmax(ReadOnlySpan<float> logits)
    {
        CheckLogits(logits);
        var best = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }
        return best;
    }

    /// <summary>Chooses the next token (advancing the stream when sampling).</summary>
    /// <param name="logits">The logits of the next token, one per id.</param>
    /// <returns>The id.</returns>
    /// <exception cref="ArgumentException"><paramref name="logits"/> is empty or holds a NaN.</exception>
    public int Next(ReadOnlySpan<float> logits)
    {
        if (_options.Temperature == 0f)
        {
            return Argmax(logits);
        }
        CheckLogits(logits);
        var count = logits.Length;
        if (_order.Length != count)
        {
            _order = new int[count];
            _weights = new double[count];
        }
        for (var i = 0; i < count; i++)
        {
            _order[i] = i;
        }
        var values = logits.ToArray();
        Array.Sort(_order, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        var kept = _options.TopK > 0 ? Math.Min(_options.TopK, count) : count;
        double temperature = _options.Temperature, top = values[_order[0]], total = 0;
        for (var i = 0; i < kept; i++)
        {
            _weights[i] = Math.Exp((values[_order[i]] - top) / temperature);
            total += _weights[i];
        }
        if (_options.TopP < 1f)
        {
            double cumulative = 0, target = _options.TopP * total;
            var nucleus = 0;
            while (nucleus < kept)
            {
                cumulative += _weights[nucleus++];
                if (cumulative >= target)
                {
                    break;
                }
            }
            kept = nucleus;
            total = cumulative;
        }
        var u = (Initialization.SplitMix64(ref _state) >> 11) * (1.0 / 9007199254740992.0) * total;
        double sum = 0;
        for (var i = 0; i < kept - 1; i++)
        {
            sum += _weights[i];
            if (u < sum)
            {
                return _order[i];
            }
        }
        return _order[kept - 1];
    }

    private static void CheckLogits(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("There are no logits to choose from.", nameof(logits));
        }
        foreach (var value in logits)
        {
            if (float.IsNaN(value))
            {
                throw new ArgumentException("The logits hold a NaN.", nameof(logits));
            }
        }
    }
}
