using NativeEngine.Autograd;
using NativeEngine.Modules;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Autograd;

/// <summary>Whole transformer blocks against finite differences, for their inputs and every parameter
/// (see <see cref="GradientCheck"/>).</summary>
public sealed class BlockGradientTests
{
    private const int B = 2, T = 5, C = 16, Heads = 4, KvHeads = 2, MlpWidth = 32;

    // A block chains a dozen kernels in f32; with h = 1e-2 the largest error observed is 4e-4 of the gradients'
    // scale, five times under the tolerance.
    private const double Step = 1e-2;
    private const double Tolerance = 2e-3;

    /// <summary>Two causal blocks chained through the pending residual (the second block's LN1 fuses the first
    /// block's last residual add), with residual dropout reseeded for every evaluation so that it is fixed.</summary>
    [Fact]
    public void TwoChainedTransformerBlocks()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var first = new TransformerBlock(context, C, Heads, KvHeads, MlpWidth, causal: true, dropout: 0.1f);
        using var second = new TransformerBlock(context, C, Heads, KvHeads, MlpWidth, causal: true, dropout: 0.1f);
        ModuleFixtures.Randomize(first, 51);
        ModuleFixtures.Randomize(second, 52);
        var x = GradientCheck.RandomLeaf(context, new Random(53), 1f, B, T, C);
        var inputs = new List<(string, Variable)> { ("x", x) };
        inputs.AddRange(ModuleFixtures.Parameters(first, "first."));
        inputs.AddRange(ModuleFixtures.Parameters(second, "second."));

        Variable Forward()
        {
            Dropout.SeedAll(first, 1);
            Dropout.SeedAll(second, 2);
            var (branch, residual) = first.Forward(x, residual: null);
            var output = second.Forward(branch, residual);
            return Fn.Add(output.Branch, output.Residual);
        }

        GradientCheck.Check(Forward, inputs, seed: 54, Step, Tolerance, directions: 2, coordinates: 4);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void TransformerBlockWithKeyLengths(bool causal, bool withLengths)
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var block = new TransformerBlock(context, C, Heads, KvHeads, MlpWidth, causal);
        ModuleFixtures.Randomize(block, TestData.Seed(55, causal ? 1 : 0));
        var x = GradientCheck.RandomLeaf(context, new Random(56), 1f, B, T, C);
        var keyLengths = withLengths ? Tensor.FromArray<int>(context, [T, 3]) : null;
        var inputs = new List<(string, Variable)> { ("x", x) };
        inputs.AddRange(ModuleFixtures.Parameters(block, ""));

        GradientCheck.Check(() => block.Forward(x, keyLengths), inputs, seed: 57, Step, Tolerance, directions: 2, coordinates: 4);
    }

    [Fact]
    public void DecoderBlockWithMemory()
    {
        const int sourceTokens = 4;
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var block = new DecoderBlock(context, C, Heads, KvHeads, MlpWidth);
        ModuleFixtures.Randomize(block, 58);
        var random = new Random(59);
        var x = GradientCheck.RandomLeaf(context, random, 1f, B, T, C);
        var memory = GradientCheck.RandomLeaf(context, random, 1f, B, sourceTokens, C);
        var memoryLengths = Tensor.FromArray<int>(context, [sourceTokens, 2]);
        var inputs = new List<(string, Variable)> { ("x", x), ("memory", memory) };
        inputs.AddRange(ModuleFixtures.Parameters(block, ""));

        GradientCheck.Check(() => block.Forward(x, memory, memoryLengths), inputs, seed: 60, Step, Tolerance, directions: 2,
            coordinates: 4);
    }
}
