namespace NativeEngine.Data;

/// <summary>
/// A small pseudo-random generator (SplitMix64) whose sequence is fixed by (seed, stream, index) and by
/// this code alone, not by the .NET version (unlike <see cref="Random"/>'s algorithms, which may change):
/// the data sets use it so that batch k is the same on every machine and after every resume.
/// </summary>
internal struct DeterministicRandom
{
    private const ulong Gamma = 0x9E3779B97F4A7C15UL;

    private ulong _state;

    /// <summary>A generator for one (seed, stream, index): distinct triples give independent-looking sequences.</summary>
    internal DeterministicRandom(long seed, ulong stream, long index)
    {
        _state = Mix(unchecked((ulong)seed + Mix(stream * Gamma + Mix(unchecked((ulong)index) + Gamma))));
    }

    /// <summary>The next 64 random bits.</summary>
    internal ulong NextUInt64()
    {
        _state = unchecked(_state + Gamma);
        return Mix(_state);
    }

    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>), without modulo bias.</summary>
    internal long NextInt64(long maxExclusive)
    {
        if (maxExclusive <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(maxExclusive), "The bound must be positive.");
        }
        var bound = (ulong)maxExclusive;
        var threshold = unchecked(0UL - bound) % bound;
        while (true)
        {
            var value = NextUInt64();
            if (value >= threshold)
            {
                return (long)(value % bound);
            }
        }
    }

    /// <summary>A uniform integer in [<paramref name="min"/>, <paramref name="maxInclusive"/>].</summary>
    internal int NextInt(int min, int maxInclusive) => min + (int)NextInt64((long)maxInclusive - min + 1);

    // The SplitMix64 finalizer: a bijection of 64-bit values with good avalanche.
    private static ulong Mix(ulong z)
    {
        unchecked
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}

/// <summary>The streams of <see cref="DeterministicRandom"/>, one per use, so that uses never share a sequence.</summary>
internal static class RandomStreams
{
    internal const ulong ReversalTraining = 1;
    internal const ulong ReversalHeldOut = 2;
    internal const ulong TextTraining = 3;
    internal const ulong TextValidation = 4;
}
