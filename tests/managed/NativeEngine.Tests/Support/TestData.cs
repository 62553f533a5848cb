namespace NativeEngine.Tests.Support;

/// <summary>Seeded random data and SIMD levels to run each kernel test on.</summary>
internal static class TestData
{
    public static float[] Floats(Random random, int count, float spread = 1f, float center = 0f)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = center + spread * (2f * random.NextSingle() - 1f);
        }
        return values;
    }

    /// <summary>A seed derived from the test case's parameters, the same in every process (unlike
    /// <see cref="HashCode"/>, which .NET randomizes per process).</summary>
    public static int Seed(params long[] parts)
    {
        var hash = 14695981039346656037UL;  // FNV-1a
        foreach (var part in parts)
        {
            hash = (hash ^ (ulong)part) * 1099511628211UL;
        }
        return (int)(hash ^ (hash >> 32));
    }

    public static sbyte[] Int8(Random random, int count)
    {
        var values = new sbyte[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (sbyte)random.Next(sbyte.MinValue, sbyte.MaxValue + 1);
        }
        return values;
    }

    /// <summary>The scalar reference kernels and the best SIMD kernels of this CPU.</summary>
    public static TheoryData<SimdLevel> SimdLevels => [SimdLevel.Scalar, SimdLevel.Auto];

    public static Context CreateContext(SimdLevel simd) => Context.Create(new ContextOptions { SimdLevel = simd });

    public static long Product(long[] shape) => shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Asserts |actual - expected| &lt;= tolerance * max(1, |expected|) element-wise, naming the first offender.</summary>
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var error = Math.Abs(actual[i] - expected[i]);
            if (!(error <= tolerance * Math.Max(1.0, Math.Abs(expected[i]))))
            {
                Assert.Fail($"{what}[{i}] = {actual[i]:R}, expected {expected[i]:R} (error {error:E3} > tolerance {tolerance:E1})");
            }
        }
    }
}
