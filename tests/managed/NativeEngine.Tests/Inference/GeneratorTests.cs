using NativeEngine.Inference;
using NativeEngine.Models;

namespace NativeEngine.Tests.Inference;

public sealed class GeneratorTests : IDisposable
{
    private const int V = 29, MaxLength = 20;

    private readonly Context _context = Context.Create();

    public void Dispose() => _context.Dispose();

    private DecoderOnlyTransformer Model(PositionalEncodingKind positions = PositionalEncodingKind.Learned, int kvHeads = 2, float scale = 8f)
    {
        var model = new DecoderOnlyTransformer(_context, new TransformerConfig
        {
            VocabularySize = V,
            MaxSequenceLength = MaxLength,
            ModelDimension = 32,
            Layers = 2,
            Heads = 4,
            KvHeads = kvHeads,
            MlpDimension = 64,
            PositionalEncoding = positions,
        }, seed: 17);
        // Weights of N(0, 0.02) give nearly uniform logits; scaled up, they make greedy choices well separated.
        foreach (var parameter in model.Parameters())
        {
            using var scope = new TensorScope();
            var values = parameter.Value.ToArray<float>();
            parameter.Value.CopyFrom<float>(values.Select(x => x * scale).ToArray());
        }
        model.Eval();
        return model;
    }

    [Theory]
    [InlineData(PositionalEncodingKind.Learned, 2)]
    [InlineData(PositionalEncodingKind.Sinusoidal, 4)]
    [InlineData(PositionalEncodingKind.Learned, 1)]
    public void CachedGreedyGenerationEqualsRecomputingFromScratch(PositionalEncodingKind positions, int kvHeads)
    {
        using var model = Model(positions, kvHeads);
        int[] prompt = [3, 1, 4, 1, 5];

        var result = new Generator(model).Run(prompt, new GenerationOptions { MaxNewTokens = 12 });

        Assert.Equal(12, result.Tokens.Length);
        Assert.Equal(FinishReason.MaxNewTokens, result.FinishReason);
        var sequence = prompt.ToList();
        using var cache = model.CreateCache(1, MaxLength);
        using var prefillScope = new TensorScope();
        model.NextTokenLogits(Tensor.FromArray<int>(_context, prompt, 1, prompt.Length), cache);
        foreach (var token in result.Tokens)
        {
            using var scope = new TensorScope();
            var full = model.LastLogits(Tensor.FromArray<int>(_context, sequence.ToArray(), 1, sequence.Count)).ToArray<float>();
            Assert.Equal(TokenSampler.Argmax(full), token);
            sequence.Add(token);
            // The cached logits of the same position agree with the recomputed ones to rounding (other summation
            // orders in the GEMMs and attention, amplified by the scaled weights).
            var cached = model.NextTokenLogits(Tensor.FromArray<int>(_context, [token], 1, 1), cache).ToArray<float>();
            var recomputed = model.LastLogits(Tensor.FromArray<int>(_context, sequence.ToArray(), 1, sequence.Count)).ToArray<float>();
            var tolerance = 1e-5f * recomputed.Max(Math.Abs);
            for (var i = 0; i < V; i++)
            {
                Assert.Equal(recomputed[i], cached[i], tolerance);
            }
        }
    }

    [Fact]
    public void SeededSamplingIsReproducibleAndTheSeedMatters()
    {
        using var model = Model(scale: 1f);
        var generator = new Generator(model);
        var options = new GenerationOptions { MaxNewTokens = 14, Temperature = 1.5f, TopP = 0.95f, Seed = 99 };

        var a = generator.Run([2, 7], options).Tokens;
        var b = generator.Run([2, 7], options).Tokens;
        var c = generator.Run([2, 7], options with { Seed = 100 }).Tokens;

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void TopKOfOneIsGreedy()
    {
        using var model = Model();
        var generator = new Generator(model);

        var greedy = generator.Run([5, 6, 7], new GenerationOptions { MaxNewTokens = 10 }).Tokens;
        var topOne = generator.Run([5, 6, 7], new GenerationOptions { MaxNewTokens = 10, Temperature = 2f, TopK = 1, Seed = 3 }).Tokens;

        Assert.Equal(greedy, topOne);
    }

    [Fact]
    public void AStopTokenEndsGenerationAndIsIncluded()
    {
        using var model = Model();
        var generator = new Generator(model);
        var free = generator.Run([1, 2], new GenerationOptions { MaxNewTokens = 10 }).Tokens;
        var stop = free[3];
        var streamed = new List<int>();

        var result = generator.Run([1, 2], new GenerationOptions { MaxNewTokens = 10, StopTokens = [stop] }, streamed.Add);

        var first = Array.IndexOf(free, stop);
        Assert.Equal(free[..(first + 1)], result.Tokens);
        Assert.Equal(FinishReason.StopToken, result.FinishReason);
        Assert.Equal(result.Tokens, streamed);
    }

    [Fact]
    public void TheLimitsAreHonoured()
    {
        using var model = Model();
        var generator = new Generator(model);

        Assert.Equal(5, generator.Run([1], new GenerationOptions { MaxNewTokens = 5 }).Tokens.Length);
        Assert.Empty(generator.Run([1], new GenerationOptions { MaxNewTokens = 0 }).Tokens);
        // A prompt of 17 leaves 3 positions for tokens 1 to 3; token 4 comes from the logits of the last position.
        var full = generator.Run(new int[17], new GenerationOptions { MaxNewTokens = 50 });
        Assert.Equal((4, FinishReason.MaxSequenceLength), (full.Tokens.Length, full.FinishReason));
        var e = Assert.Throws<ArgumentException>(() => generator.Run(new int[MaxLength + 1]));
        Assert.Contains("must have 1 to 20", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => generator.Run([]));
    }

    [Theory]
    [InlineData("MaxNewTokens")]
    [InlineData("Temperature")]
    [InlineData("TopK")]
    [InlineData("TopP")]
    [InlineData("StopTokens")]
    public void InvalidOptionsAreNamed(string option)
    {
        using var model = Model();
        var options = option switch
        {
            "MaxNewTokens" => new GenerationOptions { MaxNewTokens = -1 },
            "Temperature" => new GenerationOptions { Temperature = float.NaN },
            "TopK" => new GenerationOptions { TopK = -2 },
            "TopP" => new GenerationOptions { TopP = 0f },
            _ => new GenerationOptions { StopTokens = [V] },
        };

        var e = Assert.Throws<ArgumentException>(() => new Generator(model).Run([1], options));

        Assert.Equal(option, e.ParamName);
        Assert.StartsWith($"GenerationOptions.{option} is ", e.Message, StringComparison.Ordinal);
    }
}
