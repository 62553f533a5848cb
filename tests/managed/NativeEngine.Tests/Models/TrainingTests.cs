using NativeEngine.Checkpoints;
using NativeEngine.Data;
using NativeEngine.Inference;
using NativeEngine.Models;
using NativeEngine.Tests.Inference;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Models;

/// <summary>A tiny model trained once on the reversal task, shared by the tests of this class.</summary>
public sealed class TrainedModelFixture : IDisposable
{
    public TrainedModelFixture()
    {
        Context = Context.Create();
        Model = new DecoderOnlyTransformer(Context, TinyTraining.Config(TinyTraining.Task), seed: 1);
        HeldOut = TinyTraining.Task.GetHeldOutBatch(0, 64);
        InitialHeldOutLoss = Model.EvaluateLoss(HeldOut);
        Losses = TinyTraining.Train(Model, TinyTraining.Task, steps: 200, batchSize: 32, learningRate: 3e-3f);
        Model.Eval();
    }

    public Context Context { get; }

    public DecoderOnlyTransformer Model { get; }

    public TokenBatch HeldOut { get; }

    public float InitialHeldOutLoss { get; }

    public List<float> Losses { get; }

    public void Dispose()
    {
        Model.Dispose();
        Context.Dispose();
    }
}

public sealed class TrainingTests(TrainedModelFixture trained) : IClassFixture<TrainedModelFixture>
{
    [Fact]
    public void TheLossFallsSubstantiallyOnTheReversalTask()
    {
        var losses = trained.Losses;
        var first = losses.Take(10).Average();
        var last = losses.TakeLast(10).Average();

        // Uniform guessing over the 11 ids costs ln 11 = 2.40; the answer is fully determined by the prompt.
        Assert.InRange(first, 2.0, 2.6);
        Assert.True(last < 0.35 * first, $"mean loss of the first 10 steps {first:F3}, of the last 10 {last:F3}");
        Assert.All(losses, loss => Assert.True(float.IsFinite(loss)));
        var heldOut = trained.Model.EvaluateLoss(trained.HeldOut);
        Assert.True(heldOut < 0.35 * trained.InitialHeldOutLoss, $"held-out loss {trained.InitialHeldOutLoss:F3} -> {heldOut:F3}");
    }

    [Fact]
    public void Int8EvaluationLossIsWithinTwoPercentOfFp32()
    {
        using var quantized = QuantizedLanguageModel.Quantize(trained.Model);

        var fp32 = trained.Model.EvaluateLoss(trained.HeldOut);
        var int8 = quantized.EvaluateLoss(trained.HeldOut);

        Assert.True(Math.Abs(int8 - fp32) <= 0.02 * fp32, $"fp32 {fp32:F5}, int8 {int8:F5}");
    }

    [Fact]
    public void Int8LogitsFollowFp32Logits()
    {
        using var scope = new TensorScope();
        using var quantized = QuantizedLanguageModel.Quantize(trained.Model);
        var batch = trained.HeldOut;
        var ids = Tensor.FromArray<int>(trained.Context, batch.Inputs, batch.BatchSize, batch.SequenceLength);

        var fp32 = trained.Model.Logits(ids).ToArray<float>();
        var int8 = quantized.Logits(ids).ToArray<float>();

        // Per-channel int8 weights and per-row int8 activations: errors of about 1% of the logits' spread.
        var spread = Math.Sqrt(fp32.Average(x => (double)x * x));
        var error = Math.Sqrt(fp32.Zip(int8, (a, b) => (double)(a - b) * (a - b)).Average());
        Assert.True(error < 0.03 * spread, $"rms error {error:G3}, rms logit {spread:G3}");
        var rows = batch.BatchSize * batch.SequenceLength;
        var agree = Enumerable.Range(0, rows).Count(row => Argmax(fp32, row, quantized.VocabularySize) == Argmax(int8, row, quantized.VocabularySize));
        Assert.True(agree >= 0.97 * rows, $"{agree} of {rows} arg maxes agree");
    }

    [Fact]
    public void QuantizedGenerationWithTheCacheEqualsRecomputingFromScratch()
    {
        using var quantized = QuantizedLanguageModel.Quantize(trained.Model);
        var example = TinyTraining.Task.HeldOut[0];
        int[] prompt = [.. example.Prompt];

        var generated = new Generator(quantized).Run(prompt, new GenerationOptions { MaxNewTokens = 8 });

        var sequence = prompt.ToList();
        foreach (var token in generated.Tokens)
        {
            using var scope = new TensorScope();
            var logits = quantized.Logits(Tensor.FromArray<int>(trained.Context, sequence.ToArray(), 1, sequence.Count)).ToArray<float>();
            Assert.Equal(TokenSampler.Argmax(logits.AsSpan((sequence.Count - 1) * quantized.VocabularySize, quantized.VocabularySize)), token);
            sequence.Add(token);
        }
    }

    [Fact]
    public void TheTrainedModelReversesMostHeldOutSequences()
    {
        var task = TinyTraining.Task;
        var examples = task.HeldOut.Take(32).ToList();
        var generator = new Generator(trained.Model);

        var generated = examples.Select(e => generator.Run([.. e.Prompt],
            new GenerationOptions { MaxNewTokens = task.Options.MaxLength + 1, StopTokens = [task.EndId] }).Tokens).ToList();

        // Greedy generation scores exactly as teacher-forced arg maxes do (see ReversalTask's remarks).
        using var scope = new TensorScope();
        var batch = task.CreateBatch(examples);
        var logits = trained.Model.Logits(Tensor.FromArray<int>(trained.Context, batch.Inputs, batch.BatchSize, batch.SequenceLength)).ToArray<float>();
        var predictions = Enumerable.Range(0, batch.Inputs.Length).Select(row => Argmax(logits, row, task.VocabSize)).ToArray();
        Assert.Equal(batch.ScoreExactMatch(predictions), task.Score(examples, generated));
        Assert.True(task.Score(examples, generated).Accuracy > 0.3, task.Score(examples, generated).ToString());
    }

    [Fact]
    public void AQuantizedCheckpointStoresInt8WeightsAndReloadsExactly()
    {
        using var directory = new TempDirectory();
        using var scope = new TensorScope();
        using var quantized = QuantizedLanguageModel.Quantize(trained.Model);
        var contents = new CheckpointContents();
        contents.Config["tokenizer"] = "byte";
        quantized.WriteCheckpoint(contents);
        CheckpointDirectory.Save(directory.File("int8"), contents, TestContext.Current.CancellationToken);

        using var checkpoint = CheckpointDirectory.Load(directory.File("int8"));
        using var loaded = QuantizedLanguageModel.FromCheckpoint(trained.Context, checkpoint);

        var info = checkpoint.Model.GetInfo("blocks.1.mlp.fc.weight");
        Assert.Equal(SafeTensorsDtype.I8, info.Dtype);
        Assert.Equal([64L, 32], info.Shape);
        var scales = checkpoint.Model.GetInfo("blocks.1.mlp.fc.weight" + QuantizedLanguageModel.ScaleSuffix);
        Assert.Equal(SafeTensorsDtype.F32, scales.Dtype);
        Assert.Equal([64L], scales.Shape);
        Assert.Equal(SafeTensorsDtype.F32, checkpoint.Model.GetInfo("token_embedding.weight").Dtype);
        Assert.Equal(QuantizedLanguageModel.Layout(trained.Model.Config).Count, checkpoint.Model.Tensors.Count);
        foreach (var (name, tensor) in quantized.Tensors)
        {
            Assert.Equal(tensor.Dtype, loaded.Tensors[name].Dtype);
            if (tensor.Dtype == Dtype.I8)
            {
                Assert.Equal(tensor.ToArray<sbyte>(), loaded.Tensors[name].ToArray<sbyte>());
            }
            else
            {
                Assert.Equal(tensor.ToArray<float>(), loaded.Tensors[name].ToArray<float>());
            }
        }
        var ids = Tensor.FromArray<int>(trained.Context, trained.HeldOut.Inputs, trained.HeldOut.BatchSize, trained.HeldOut.SequenceLength);
        Assert.Equal(quantized.Logits(ids).ToArray<float>(), loaded.Logits(ids).ToArray<float>());
        Assert.Throws<CheckpointException>(() => DecoderOnlyTransformer.FromCheckpoint(trained.Context, checkpoint));
    }

    private static int Argmax(float[] logits, int row, int vocabulary) => TokenSampler.Argmax(logits.AsSpan(row * vocabulary, vocabulary));
}
