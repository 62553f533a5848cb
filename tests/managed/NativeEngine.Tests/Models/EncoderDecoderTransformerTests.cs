using NativeEngine.Autograd;
using NativeEngine.Checkpoints;
using NativeEngine.Models;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Models;

public sealed class EncoderDecoderTransformerTests : IDisposable
{
    // The copy task: symbols 0..9, then start, end and padding.
    private const int Symbols = 10, Start = 10, End = 11, Pad = 12, V = 13, MaxSymbols = 8, Tmax = MaxSymbols + 1;

    private static readonly TransformerConfig s_config = new()
    {
        VocabularySize = V,
        MaxSequenceLength = Tmax,
        ModelDimension = 32,
        Layers = 2,
        EncoderLayers = 2,
        Heads = 4,
        KvHeads = 2,
        MlpDimension = 64,
    };

    private readonly Context _context = Context.Create();

    public void Dispose() => _context.Dispose();

    [Fact]
    public void TheStructureIsNamedAndCountedAsDocumented()
    {
        using var model = new EncoderDecoderTransformer(_context, s_config with { TieEmbeddings = false }, seed: 1);
        var names = model.NamedParameters().Select(entry => entry.Key).ToHashSet();

        Assert.Contains("encoder_blocks.1.attention.qkv.weight", names);
        Assert.Contains("decoder_blocks.1.cross_attention.kv.weight", names);
        Assert.Contains("decoder_blocks.0.self_attention.qkv.weight", names);
        Assert.Contains("lm_head.weight", names);
        Assert.Contains("position_embedding.weight", names);
        Assert.DoesNotContain("position_embedding.weight", new EncoderDecoderTransformer(_context,
            s_config with { PositionalEncoding = PositionalEncodingKind.Sinusoidal }).NamedParameters().Select(entry => entry.Key));
        Assert.Throws<ArgumentException>(() => new EncoderDecoderTransformer(_context, s_config with { EncoderLayers = 0 }));
    }

    [Fact]
    public void ForwardAndBackwardRunAndPaddingDoesNotLeakIntoTheLoss()
    {
        using var model = new EncoderDecoderTransformer(_context, s_config, seed: 2);
        var batch = CopyBatch(step: 0, batchSize: 4);
        using (var tape = new GradientTape())
        {
            var loss = Loss(model, batch);
            tape.Backward(loss);
            Assert.Equal(Math.Log(V), loss.Item(), 0.1);
        }
        Assert.All(model.Parameters(), parameter => Assert.Contains(parameter.Grad!.ToArray<float>(), g => g != 0f));

        // Changing what lies past a source's length changes nothing.
        var padded = batch with { Source = [.. batch.Source.Select((id, i) => i % Tmax >= batch.Lengths[i / Tmax] ? (id + 3) % Symbols : id)] };
        using var noGrad = GradientTape.NoGrad();
        using var scope = new TensorScope();
        Assert.Equal(Loss(model, batch).Item(), Loss(model, padded).Item());
    }

    [Fact]
    public void TheLossFallsOnTheCopyTaskAndGreedyDecodingCopies()
    {
        using var model = new EncoderDecoderTransformer(_context, s_config, seed: 3);

        var losses = TinyTraining.Train(model, step => Loss(model, CopyBatch(step, batchSize: 32)), steps: 150, learningRate: 3e-3f);

        var first = losses.Take(10).Average();
        var last = losses.TakeLast(10).Average();
        Assert.True(last < 0.25 * first, $"mean loss of the first 10 steps {first:F3}, of the last 10 {last:F3}");

        model.Eval();
        var test = CopyBatch(step: 1_000_000, batchSize: 16);
        using var scope = new TensorScope();
        var decoded = model.GreedyDecode(Tensor.FromArray<int>(_context, test.Source, 16, Tmax), Tensor.FromArray<int>(_context, test.Lengths),
            Start, End, Tmax);
        Assert.Equal(16, decoded.Length);
        Assert.All(decoded, tokens => Assert.InRange(tokens.Length, 1, Tmax));
        var correct = decoded.Select((tokens, row) => tokens.SequenceEqual(test.Source.Skip(row * Tmax).Take(test.Lengths[row]).Append(End))).Count(x => x);
        Assert.True(correct >= 8, $"{correct} of 16 sequences copied exactly");
    }

    [Fact]
    public void ACheckpointRoundTripsTheModel()
    {
        using var directory = new TempDirectory();
        using var model = new EncoderDecoderTransformer(_context, s_config, seed: 4);
        var contents = new CheckpointContents();
        model.WriteCheckpoint(contents);
        CheckpointDirectory.Save(directory.File("seq2seq"), contents, TestContext.Current.CancellationToken);

        using var checkpoint = CheckpointDirectory.Load(directory.File("seq2seq"));
        using var loaded = EncoderDecoderTransformer.FromCheckpoint(_context, checkpoint);

        foreach (var (name, tensor) in ModelWeights.ToMap(loaded))
        {
            Assert.Equal(ModelWeights.ToMap(model)[name].ToArray<float>(), tensor.ToArray<float>());
        }
        Assert.Throws<CheckpointException>(() => DecoderOnlyTransformer.FromCheckpoint(_context, checkpoint));
    }

    private sealed record CopyExamples(int[] Source, int[] Lengths, int[] TargetInputs, int[] Targets, int TargetCount);

    private Variable Loss(EncoderDecoderTransformer model, CopyExamples batch)
    {
        var rows = batch.Lengths.Length;
        return model.Loss(Tensor.FromArray<int>(_context, batch.Source, rows, Tmax), Tensor.FromArray<int>(_context, batch.Lengths),
            Tensor.FromArray<int>(_context, batch.TargetInputs, rows, Tmax), Tensor.FromArray<int>(_context, batch.Targets, rows, Tmax),
            batch.TargetCount);
    }

    // Source: 3 to 8 symbols padded; target inputs: start + symbols; targets: symbols + end, -1 on padding.
    private static CopyExamples CopyBatch(long step, int batchSize)
    {
        var random = new Random(TestData.Seed(step));
        var source = new int[batchSize * Tmax];
        var inputs = new int[batchSize * Tmax];
        var targets = new int[batchSize * Tmax];
        var lengths = new int[batchSize];
        Array.Fill(source, Pad);
        Array.Fill(inputs, Pad);
        Array.Fill(targets, -1);
        var count = 0;
        for (var row = 0; row < batchSize; row++)
        {
            var length = lengths[row] = random.Next(3, MaxSymbols + 1);
            inputs[row * Tmax] = Start;
            for (var t = 0; t < length; t++)
            {
                var symbol = random.Next(Symbols);
                source[row * Tmax + t] = symbol;
                inputs[row * Tmax + t + 1] = symbol;
                targets[row * Tmax + t] = symbol;
            }
            targets[row * Tmax + length] = End;
            count += length + 1;
        }
        return new CopyExamples(source, lengths, inputs, targets, count);
    }
}
