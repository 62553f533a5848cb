using NativeEngine.Autograd;
using NativeEngine.Data;
using NativeEngine.Models;
using NativeEngine.Modules;

namespace NativeEngine.Tests.Models;

/// <summary>A plain training loop for tests: one tape per step, AdamW on every parameter.</summary>
internal static class TinyTraining
{
    /// <summary>A reversal task small enough to learn in a few hundred steps: 8 symbols, sequences of 2 to 6
    /// (13 positions, 11 ids).</summary>
    public static ReversalTask Task { get; } = new(new ReversalTaskOptions { AlphabetSize = 8, MinLength = 2, MaxLength = 6, HeldOutCount = 64, Seed = 7 });

    /// <summary>A small decoder-only configuration for <see cref="Task"/>.</summary>
    public static TransformerConfig Config(ReversalTask task) => new()
    {
        VocabularySize = task.VocabSize,
        MaxSequenceLength = task.SequenceLength,
        ModelDimension = 32,
        Layers = 2,
        Heads = 4,
        KvHeads = 4,
        MlpDimension = 64,
    };

    /// <summary>Runs <paramref name="steps"/> AdamW steps on the loss of each step; returns the losses.</summary>
    public static List<float> Train(Module module, Func<long, Variable> loss, int steps, float learningRate)
    {
        var context = module.Context;
        var parameters = module.Parameters().ToList();
        var moments = parameters.Select(p => (M: Tensor.Create(context, Dtype.F32, [.. p.Shape]).MoveTo(null),
            V: Tensor.Create(context, Dtype.F32, [.. p.Shape]).MoveTo(null))).ToList();
        var losses = new List<float>();
        try
        {
            for (var step = 1; step <= steps; step++)
            {
                module.ZeroGrad();
                using (var tape = new GradientTape())
                {
                    var value = loss(step);
                    tape.Backward(value);
                    losses.Add(value.Item());
                }
                for (var i = 0; i < parameters.Count; i++)
                {
                    Ops.AdamWStep(context, parameters[i].Value, parameters[i].Grad!, moments[i].M, moments[i].V, learningRate, step,
                        weightDecay: 0f);
                }
            }
        }
        finally
        {
            foreach (var (m, v) in moments)
            {
                m.Dispose();
                v.Dispose();
            }
        }
        return losses;
    }

    /// <summary>Trains a decoder-only model on <paramref name="task"/>'s training batches.</summary>
    public static List<float> Train(DecoderOnlyTransformer model, ReversalTask task, int steps, int batchSize, float learningRate) =>
        Train(model, step => model.Loss(task.GetTrainingBatch(step, batchSize), LossOptions.Full), steps, learningRate);
}
