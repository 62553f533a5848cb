using NativeEngine.Inference;

namespace NativeEngine.Tests.Inference;

public sealed class TokenSamplerTests
{
    private static readonly float[] s_logits = [1.0f, 2.5f, -0.5f, 2.5f, 0.3f];

    [Fact]
    public void ArgmaxTakesTheLowestIdAmongEqualMaxima()
    {
        Assert.Equal(1, TokenSampler.Argmax(s_logits));
        Assert.Throws<ArgumentException>(() => TokenSampler.Argmax([1f, float.NaN]));
        Assert.Throws<ArgumentException>(() => TokenSampler.Argmax([]));
    }

    [Theory]
    [InlineData(1.0f, 0, 1.0f)]
    [InlineData(0.7f, 0, 1.0f)]
    [InlineData(1.0f, 3, 1.0f)]
    [InlineData(1.0f, 0, 0.8f)]
    public void SampleFrequenciesFollowTheTruncatedSoftmax(float temperature, int topK, float topP)
    {
        var sampler = new TokenSampler(new GenerationOptions { Temperature = temperature, TopK = topK, TopP = topP, Seed = 12345 });
        const int draws = 40_000;
        var counts = new int[s_logits.Length];
        for (var i = 0; i < draws; i++)
        {
            counts[sampler.Next(s_logits)]++;
        }

        var expected = Expected(temperature, topK, topP);
        for (var id = 0; id < s_logits.Length; id++)
        {
            // Five binomial standard deviations.
            var tolerance = 5 * Math.Sqrt(expected[id] * (1 - expected[id]) / draws) + 1e-9;
            Assert.InRange((double)counts[id] / draws, expected[id] - tolerance, expected[id] + tolerance);
        }
    }

    [Fact]
    public void ATinyTopPIsGreedy()
    {
        var sampler = new TokenSampler(new GenerationOptions { Temperature = 1f, TopP = 1e-6f, Seed = 1 });

        Assert.All(Enumerable.Range(0, 100), _ => Assert.Equal(1, sampler.Next(s_logits)));
    }

    // Softmax of logits / temperature over the top k (ties: lower id first), then the smallest prefix reaching top-p.
    private static double[] Expected(float temperature, int topK, float topP)
    {
        var order = Enumerable.Range(0, s_logits.Length).OrderByDescending(i => s_logits[i]).ThenBy(i => i).ToArray();
        var kept = topK > 0 ? topK : order.Length;
        var weights = order.Take(kept).Select(i => Math.Exp((s_logits[i] - s_logits[order[0]]) / (double)temperature)).ToArray();
        var total = weights.Sum();
        if (topP < 1f)
        {
            double cumulative = 0;
            var nucleus = 0;
            while (nucleus < kept && cumulative < topP * total)
            {
                cumulative += weights[nucleus++];
            }
            kept = nucleus;
            total = cumulative;
        }
        var expected = new double[s_logits.Length];
        for (var i = 0; i < kept; i++)
        {
            expected[order[i]] = weights[i] / total;
        }
        return expected;
    }
}
