using NativeEngine.Autograd;
using NativeEngine.Modules;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Autograd;

/// <summary>Functions composed as models compose them, and inputs the way callers may pass them (strided views),
/// against finite differences (see <see cref="GradientCheck"/>).</summary>
public sealed class CompositionGradientTests
{
    private const double Step = 1e-2;
    private const double Tolerance = 2e-3;

    // A mean loss of order 2 has parameter gradients of order 1e-3, so the f32 rounding noise of the loss
    // (about 1e-6) weighs a thousand times more than for the projected outputs of the other checks; a larger
    // step divides that noise, and the five-point stencil keeps the truncation error (O(h^4)) negligible.
    private const double LossStep = 5e-2;

    /// <summary>Leaves whose values are column slices of wider tensors (rows of one stride, not contiguous).</summary>
    [Fact]
    public void StridedInputs()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(71);
        var wide = Tensor.FromArray<float>(context, TestData.Floats(random, 2 * 3 * 10), 2, 3, 10);
        var x = new Variable(wide.View(2, [2, 3, 6], [30, 10, 1]), requiresGrad: true);
        var residual = new Variable(wide.View(1, [2, 3, 6], [30, 10, 1]).Clone(), requiresGrad: true);
        var weight = GradientCheck.RandomLeaf(context, random, 0.5f, 4, 6);
        var gamma = GradientCheck.Leaf(context, TestData.Floats(random, 6, 0.3f, center: 1f), 6);
        var classes = GradientCheck.RandomLeaf(context, random, 1f, 5, 6);
        var targets = Tensor.FromArray<int>(context, [0, 4, 2, -1, 1, 3], 2, 3);
        List<(string, Variable)> inputs = [("x", x), ("weight", weight), ("gamma", gamma), ("residual", residual)];

        GradientCheck.Check(() => Fn.Linear(x, weight), inputs[..2], seed: 71, Step, Tolerance);
        GradientCheck.Check(() => Fn.Gelu(x), inputs[..1], seed: 72, Step, Tolerance);
        GradientCheck.Check(() => Fn.Reshape(Fn.Gelu(Fn.Reshape(x, 6, 6)), 36), inputs[..1], seed: 73, Step, Tolerance);
        GradientCheck.Check(() => Fn.Add(x, Fn.Reshape(Fn.Narrow(x, 1, 1), 3, 6)), inputs[..1], seed: 74, Step, Tolerance);
        GradientCheck.Check(() =>
        {
            var (y, s) = Fn.LayerNorm(x, null, gamma, null);
            return Fn.Add(y, Fn.Gelu(s));
        }, inputs[..3], seed: 75, Step, Tolerance);
        GradientCheck.Check(() =>
        {
            var (y, s) = Fn.RmsNorm(residual, x, gamma);
            return Fn.Add(y, Fn.Gelu(s));
        }, inputs, seed: 76, Step, Tolerance);
        GradientCheck.Check(() => Fn.CrossEntropyLoss(x, classes, null, targets), [("x", x), ("classes", classes)], seed: 77,
            Step, Tolerance);
    }

    /// <summary>The fused QKV layout seen from a strided leaf: attention reads q, k and v as views of a view.</summary>
    [Fact]
    public void SelfAttentionOnAStridedProjection()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(78);
        var wide = Tensor.FromArray<float>(context, TestData.Floats(random, 2 * 4 * 40), 2, 4, 40);
        var qkv = new Variable(wide.View(3, [2, 4, 32], [160, 40, 1]), requiresGrad: true);

        GradientCheck.Check(() => Fn.SelfAttention(qkv, 4, 2, causal: true), [("qkv", qkv)], seed: 78, Step, Tolerance,
            coordinates: 16);
    }

    /// <summary>A small GPT: token embedding tied to the output projection, learned positions broadcast over the
    /// batch, two blocks chained through the pending residual, a final LayerNorm that fuses the last residual
    /// add, and the full or the sampled loss.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TinyLanguageModelWithTiedEmbedding(bool sampled)
    {
        const int batch = 2, tokens = 5, dim = 16, vocabulary = 11;
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var embedding = new Embedding(context, vocabulary, dim);
        using var positions = new LearnedPositionalEmbedding(context, 8, dim);
        using var blocks = new ModuleList<TransformerBlock>(context,
            [new TransformerBlock(context, dim, 4, 2, 32, causal: true), new TransformerBlock(context, dim, 4, 1, 32, causal: true)]);
        using var finalNorm = new LayerNorm(context, dim);
        ModuleFixtures.Randomize(embedding, 79);
        ModuleFixtures.Randomize(positions, 80);
        ModuleFixtures.Randomize(blocks, 81);
        ModuleFixtures.Randomize(finalNorm, 82);
        var ids = Tensor.FromArray<int>(context, [1, 5, 5, 2, 9, 0, 3, 3, 3, 10], batch, tokens);
        var targets = Tensor.FromArray<int>(context, [5, 5, 2, 9, -1, 3, 3, 3, 10, 1], batch, tokens);

        Variable Loss()
        {
            var x = Fn.Add(embedding.Forward(ids), positions.Forward(1, tokens));
            Variable? residual = null;
            foreach (var block in blocks)
            {
                (x, residual) = block.Forward(x, residual);
            }
            var (hidden, _) = finalNorm.Forward(x, residual);
            return sampled
                ? Fn.SampledSoftmaxLoss(hidden, embedding.Weight, null, targets, 4, seed: 83)
                : Fn.CrossEntropyLoss(hidden, embedding.Weight, null, targets, targetCount: 9);
        }

        var inputs = ModuleFixtures.Parameters(embedding, "wte.");
        inputs.AddRange(ModuleFixtures.Parameters(positions, "wpe."));
        inputs.AddRange(ModuleFixtures.Parameters(blocks, "blocks."));
        inputs.AddRange(ModuleFixtures.Parameters(finalNorm, "ln_f."));
        var gradients = GradientCheck.Check(Loss, inputs, seed: 84, LossStep, Tolerance, directions: 1, coordinates: 3).Gradients;

        // Position rows outside [1, 1 + tokens) get no gradient.
        var wpe = gradients[1];
        Assert.All(wpe.AsSpan(0, dim).ToArray(), value => Assert.Equal(0f, value));
        Assert.All(wpe.AsSpan(6 * dim).ToArray(), value => Assert.Equal(0f, value));
    }
}
