using NativeEngine.Autograd;
using NativeEngine.Checkpoints;
using NativeEngine.Data;
using NativeEngine.Models;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Models;

public sealed class DecoderOnlyTransformerTests : IDisposable
{
    private const int V = 23, T = 12, C = 32, L = 2, H = 4, Hkv = 2, M = 48;

    private static readonly TransformerConfig s_config = new()
    {
        VocabularySize = V,
        MaxSequenceLength = T,
        ModelDimension = C,
        Layers = L,
        Heads = H,
        KvHeads = Hkv,
        MlpDimension = M,
    };

    private readonly Context _context = Context.Create();

    public void Dispose() => _context.Dispose();

    [Theory]
    [InlineData(true, PositionalEncodingKind.Learned)]
    [InlineData(false, PositionalEncodingKind.Learned)]
    [InlineData(true, PositionalEncodingKind.Sinusoidal)]
    public void ParametersAreCountedByHandAndATiedEmbeddingOnce(bool tied, PositionalEncodingKind positions)
    {
        using var model = new DecoderOnlyTransformer(_context, s_config with { TieEmbeddings = tied, PositionalEncoding = positions });

        const int qkv = C + 2 * Hkv * (C / H);
        const long block = 2 * C + (C * qkv + qkv) + (C * C + C) + 2 * C + (C * M + M) + (M * C + C);
        var expected = V * C + (positions == PositionalEncodingKind.Learned ? T * C : 0) + L * block + 2 * C + (tied ? 0 : V * C);
        Assert.Equal(expected, model.ParameterCount);
        var names = model.NamedParameters().Select(entry => entry.Key).ToList();
        Assert.Equal(names.Distinct().Count(), names.Count);
        Assert.Equal(!tied, names.Contains("lm_head.weight"));
        Assert.Equal(positions == PositionalEncodingKind.Learned, names.Contains("position_embedding.weight"));
        Assert.Contains("blocks.1.attention.qkv.weight", names);
        Assert.Equal(tied, ReferenceEquals(model.OutputWeight, model.TokenEmbedding.Weight));
        Assert.All(model.NamedParameters(), entry => Assert.Equal(entry.Key, entry.Value.Name));
    }

    [Fact]
    public void ForwardAndLogitsHaveTheExpectedShapesAndTheLastPositionMatches()
    {
        using var model = new DecoderOnlyTransformer(_context, s_config, seed: 3);
        using var scope = new TensorScope();
        var ids = Tensor.FromArray<int>(_context, RandomIds(3 * 7, seed: 1), 3, 7);

        using (GradientTape.NoGrad())
        {
            Assert.Equal([3L, 7, C], model.Forward(ids).Shape);
        }
        var logits = model.Logits(ids);
        var last = model.LastLogits(ids);

        Assert.Equal([3L, 7, V], logits.Shape);
        Assert.Equal([3L, V], last.Shape);
        var all = logits.ToArray<float>();
        var lastValues = last.ToArray<float>();
        for (var b = 0; b < 3; b++)
        {
            for (var v = 0; v < V; v++)
            {
                Assert.Equal(all[(b * 7 + 6) * V + v], lastValues[b * V + v], 1e-5f);
            }
        }
    }

    [Fact]
    public void InitializationFollowsGpt2()
    {
        var config = s_config with { VocabularySize = 1024, ModelDimension = 64, Heads = 4, KvHeads = 4, MlpDimension = 256, Layers = 4, TieEmbeddings = false };
        using var model = new DecoderOnlyTransformer(_context, config, seed: 42);
        var parameters = model.NamedParameters().ToDictionary(entry => entry.Key, entry => entry.Value.Value.ToArray<float>());

        AssertNormal(parameters["token_embedding.weight"], 0.02);                // 65,536 values
        AssertNormal(parameters["lm_head.weight"], 0.02);
        AssertNormal(parameters["blocks.0.mlp.fc.weight"], 0.02);                // 16,384
        var residualStd = 0.02 / Math.Sqrt(2 * 4);
        AssertNormal(parameters["blocks.3.mlp.proj.weight"], residualStd);
        AssertNormal(parameters["blocks.2.attention.proj.weight"], residualStd); // 4,096
        Assert.All(parameters.Where(p => p.Key.EndsWith(".bias", StringComparison.Ordinal)), p => Assert.All(p.Value, x => Assert.Equal(0f, x)));
        Assert.All(parameters["ln_f.weight"].Concat(parameters["blocks.1.ln2.weight"]), x => Assert.Equal(1f, x));
        // Each parameter draws from its own stream: two matrices of one shape differ.
        Assert.NotEqual(parameters["blocks.0.mlp.fc.weight"], parameters["blocks.1.mlp.fc.weight"]);
    }

    [Fact]
    public void TheSeedDeterminesTheWeights()
    {
        using var a = new DecoderOnlyTransformer(_context, s_config, seed: 5);
        using var b = new DecoderOnlyTransformer(_context, s_config, seed: 5);
        using var c = new DecoderOnlyTransformer(_context, s_config, seed: 6);

        Assert.Equal(a.TokenEmbedding.Weight.Value.ToArray<float>(), b.TokenEmbedding.Weight.Value.ToArray<float>());
        Assert.NotEqual(a.TokenEmbedding.Weight.Value.ToArray<float>(), c.TokenEmbedding.Weight.Value.ToArray<float>());
    }

    [Fact]
    public void TheFullLossIsTheMeanCrossEntropyOfTheLogits()
    {
        using var model = new DecoderOnlyTransformer(_context, s_config, seed: 9);
        var batch = Batch(4, T, seed: 2);
        using var scope = new TensorScope();

        var loss = model.EvaluateLoss(batch);
        var logits = model.Logits(Tensor.FromArray<int>(_context, batch.Inputs, 4, T)).ToArray<float>();

        double total = 0;
        for (var row = 0; row < batch.Inputs.Length; row++)
        {
            var target = batch.Targets[row];
            if (target < 0)
            {
                continue;
            }
            var z = logits.AsSpan(row * V, V);
            var max = z.ToArray().Max();
            var lse = max + Math.Log(z.ToArray().Sum(x => Math.Exp(x - max)));
            total += lse - z[target];
        }
        Assert.Equal(total / batch.TargetCount, loss, 1e-5);
        // Small initial weights give nearly uniform predictions.
        Assert.Equal(Math.Log(V), loss, 0.05);
    }

    [Fact]
    public void BackwardReachesEveryParameterWithFullAndSampledLosses()
    {
        using var model = new DecoderOnlyTransformer(_context, s_config with { TieEmbeddings = false }, seed: 9);
        var batch = Batch(2, T, seed: 3);
        foreach (var options in new[] { LossOptions.Full, new LossOptions(LossKind.Sampled, Samples: 8, Seed: 11) })
        {
            model.ZeroGrad();
            using var tape = new GradientTape();
            var loss = model.Loss(batch, options);
            tape.Backward(loss);

            Assert.True(float.IsFinite(loss.Item()));
            Assert.All(model.NamedParameters(), entry =>
            {
                var grad = entry.Value.Grad;
                Assert.NotNull(grad);
                Assert.Contains(grad.ToArray<float>(), g => g != 0f);
            });
        }
    }

    [Fact]
    public void SampledLossDependsOnlyOnTheSeed()
    {
        using var model = new DecoderOnlyTransformer(_context, s_config, seed: 9);
        var batch = Batch(2, T, seed: 3);
        float Loss(ulong seed)
        {
            using var noGrad = GradientTape.NoGrad();
            using var scope = new TensorScope();
            return model.Loss(batch, new LossOptions(LossKind.Sampled, 6, seed)).Item();
        }

        Assert.Equal(Loss(1), Loss(1));
        Assert.NotEqual(Loss(1), Loss(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Loss(batch, new LossOptions(LossKind.Sampled, 0, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Loss(batch, new LossOptions(LossKind.Sampled, V + 1, 1)));
    }

    [Fact]
    public void DropoutIsSeededFromTheModelSeedAndOffInEvaluation()
    {
        var config = s_config with { Dropout = 0.2f };
        using var a = new DecoderOnlyTransformer(_context, config, seed: 4);
        using var b = new DecoderOnlyTransformer(_context, config, seed: 4);
        using var plain = new DecoderOnlyTransformer(_context, s_config, seed: 4);
        var batch = Batch(2, T, seed: 5);
        float Loss(DecoderOnlyTransformer model)
        {
            using var scope = new TensorScope();
            using var noGrad = GradientTape.NoGrad();
            return model.Loss(batch, LossOptions.Full).Item();
        }

        var first = Loss(a);
        Assert.Equal(first, Loss(b));
        Assert.NotEqual(first, Loss(a));        // the next call draws new masks
        Assert.NotEqual(first, Loss(plain));
        a.Eval();
        Assert.Equal(Loss(plain), Loss(a));
    }

    [Fact]
    public void BadInputsAreRefusedWithClearErrors()
    {
        using var model = new DecoderOnlyTransformer(_context, s_config);
        using var scope = new TensorScope();

        Assert.Throws<ArgumentOutOfRangeException>(() => model.Logits(Tensor.FromArray<int>(_context, new int[T + 1], 1, T + 1)));
        var rank = Assert.Throws<ArgumentException>(() => model.Logits(Tensor.FromArray<int>(_context, new int[4])));
        Assert.Contains("[B, T] I32", rank.Message, StringComparison.Ordinal);
        // An id out of range: the CPU refuses the call; a device checks ids on the device and
        // throws at the context's next wait.
        Assert.Throws<NativeEngineException>(() =>
        {
            model.Logits(Tensor.FromArray<int>(_context, [0, V], 1, 2));
            _context.Synchronize();
        });
        var encoder = Assert.Throws<ArgumentException>(() => new DecoderOnlyTransformer(_context, s_config with { EncoderLayers = 1 }));
        Assert.Contains("EncoderLayers", encoder.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new DecoderOnlyTransformer(_context, s_config with { KvHeads = 3 }));
    }

    [Fact]
    public void TheWeightMapRoundTripsExactly()
    {
        using var source = new DecoderOnlyTransformer(_context, s_config with { TieEmbeddings = false }, seed: 1);
        using var target = new DecoderOnlyTransformer(_context, s_config with { TieEmbeddings = false }, seed: 2);
        using var scope = new TensorScope();
        var copies = ModelWeights.ToMap(source).ToDictionary(entry => entry.Key, entry => entry.Value.Clone());

        ModelWeights.Load(target, copies);

        Assert.Equal(source.ParameterCount, target.ParameterCount);
        foreach (var (name, tensor) in ModelWeights.ToMap(target))
        {
            Assert.Equal(copies[name].ToArray<float>(), tensor.ToArray<float>());
        }
    }

    [Fact]
    public void LoadingRefusesMissingExtraAndMisShapedTensorsAndLoadsNothing()
    {
        using var model = new DecoderOnlyTransformer(_context, s_config, seed: 1);
        using var scope = new TensorScope();
        var before = model.TokenEmbedding.Weight.Value.ToArray<float>();
        Dictionary<string, Tensor> Map() => ModelWeights.ToMap(model).ToDictionary(entry => entry.Key, entry => Tensor.Create(_context, Dtype.F32, [.. entry.Value.Shape]));

        var missing = Map();
        missing.Remove("blocks.1.mlp.fc.bias");
        var extra = Map();
        extra["blocks.2.mlp.fc.bias"] = Tensor.Create(_context, Dtype.F32, M);
        var misShaped = Map();
        misShaped["ln_f.weight"] = Tensor.Create(_context, Dtype.F32, C + 1);
        var wrongType = Map();
        wrongType["ln_f.bias"] = Tensor.Create(_context, Dtype.I32, C);

        Assert.Contains("missing tensor 'blocks.1.mlp.fc.bias' (expected F32 [48])", Assert.Throws<ArgumentException>(() => ModelWeights.Load(model, missing)).Message, StringComparison.Ordinal);
        Assert.Contains("unexpected tensor 'blocks.2.mlp.fc.bias'", Assert.Throws<ArgumentException>(() => ModelWeights.Load(model, extra)).Message, StringComparison.Ordinal);
        Assert.Contains("tensor 'ln_f.weight' has shape [33]; expected [32]", Assert.Throws<ArgumentException>(() => ModelWeights.Load(model, misShaped)).Message, StringComparison.Ordinal);
        Assert.Contains("tensor 'ln_f.bias' is I32; expected F32", Assert.Throws<ArgumentException>(() => ModelWeights.Load(model, wrongType)).Message, StringComparison.Ordinal);
        Assert.Equal(before, model.TokenEmbedding.Weight.Value.ToArray<float>());
    }

    [Fact]
    public void ACheckpointDirectoryRoundTripsTheModel()
    {
        using var directory = new TempDirectory();
        var config = s_config with { PositionalEncoding = PositionalEncodingKind.Sinusoidal, Dropout = 0.1f };
        using var model = new DecoderOnlyTransformer(_context, config, seed: 8);
        var contents = new CheckpointContents();
        contents.Config["tokenizer"] = "byte";
        model.WriteCheckpoint(contents);
        CheckpointDirectory.Save(directory.File("checkpoint"), contents, TestContext.Current.CancellationToken);

        using var checkpoint = CheckpointDirectory.Load(directory.File("checkpoint"));
        using var loaded = DecoderOnlyTransformer.FromCheckpoint(_context, checkpoint);

        Assert.Equal(config, loaded.Config);
        Assert.Equal("byte", checkpoint.CreateTokenizer().Name);
        Assert.Equal(DecoderOnlyTransformer.Architecture, ModelCheckpoint.ReadArchitecture(checkpoint));
        using var scope = new TensorScope();
        model.Eval();
        loaded.Eval();
        var ids = Tensor.FromArray<int>(_context, RandomIds(2 * T, seed: 4), 2, T);
        Assert.Equal(model.Logits(ids).ToArray<float>(), loaded.Logits(ids).ToArray<float>());

        using var other = new DecoderOnlyTransformer(_context, config with { MlpDimension = M + 1 });
        var e = Assert.Throws<CheckpointException>(() => ModelWeights.Load(other, checkpoint.Model));
        Assert.Contains("shape mismatch", e.Message, StringComparison.Ordinal);
    }

    internal static int[] RandomIds(int count, int seed, int vocabulary = V)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => random.Next(vocabulary))];
    }

    // Next-token batches of random ids with a few ignored targets.
    private static TokenBatch Batch(int batchSize, int length, int seed)
    {
        var ids = RandomIds(batchSize * (length + 1), seed);
        var inputs = new int[batchSize * length];
        var targets = new int[batchSize * length];
        for (var b = 0; b < batchSize; b++)
        {
            for (var t = 0; t < length; t++)
            {
                inputs[b * length + t] = ids[b * (length + 1) + t];
                targets[b * length + t] = t < 2 ? TokenBatch.IgnoreTarget : ids[b * (length + 1) + t + 1];
            }
        }
        return new TokenBatch(batchSize, length, inputs, targets);
    }

    private static void AssertNormal(float[] values, double std)
    {
        var mean = values.Average(x => (double)x);
        var sd = Math.Sqrt(values.Average(x => ((double)x - mean) * ((double)x - mean)));
        // Standard errors: std / sqrt(n) for the mean, about std / sqrt(2n) for the standard deviation; 5 of them.
        Assert.InRange(mean, -5 * std / Math.Sqrt(values.Length), 5 * std / Math.Sqrt(values.Length));
        Assert.InRange(sd, std * (1 - 5 / Math.Sqrt(2.0 * values.Length)), std * (1 + 5 / Math.Sqrt(2.0 * values.Length)));
    }
}
