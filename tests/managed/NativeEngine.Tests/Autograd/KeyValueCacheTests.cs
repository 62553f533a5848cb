using NativeEngine.Autograd;
using NativeEngine.Modules;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Autograd;

/// <summary>Incremental decoding with a <see cref="KeyValueCache"/> against the full causal forward pass.</summary>
public sealed class KeyValueCacheTests
{
    private const int B = 2, T = 6, C = 16, Heads = 4, KvHeads = 2;

    // The same kernels on the same values, only the keys split differently into tiles: float rounding only.
    private const double Tolerance = 1e-5;

    [Theory]
    [InlineData(new[] { 1, 1, 1, 1, 1, 1 })]
    [InlineData(new[] { 3, 1, 2 })]
    public void MultiHeadAttentionDecodedIncrementallyEqualsTheFullCausalPass(int[] chunks)
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var attention = new MultiHeadAttention(context, C, Heads, KvHeads, causal: true, dropout: 0.1f);
        ModuleFixtures.Randomize(attention, 61);
        var x = TestData.Floats(new Random(62), B * T * C);
        using var cache = new KeyValueCache(context, 1, B, T, KvHeads, C / Heads);

        double[] full;
        attention.Eval();
        using (GradientTape.NoGrad())
        {
            full = attention.Forward(new Variable(Tensor.FromArray<float>(context, x, B, T, C))).Value.ToArray<float>()
                .Select(v => (double)v).ToArray();
        }
        attention.Train();  // decoding is inference: no residual dropout in either mode
        var incremental = Decode(chunks, x, cache, tokens => attention.Forward(tokens, cache, 0));

        TestData.AssertClose(incremental, full, Tolerance, "incremental attention");
        Assert.Equal(T, cache.Length);
    }

    /// <summary>Two chained blocks (the second takes the first's pending residual) on layers 0 and 1 of one cache.
    /// Decoding is inference: residual dropout is off even when the modules are in training mode.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TransformerBlocksDecodedIncrementallyEqualTheFullCausalPass(bool trainingMode)
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var blocks = new ModuleList<TransformerBlock>(context,
            [new TransformerBlock(context, C, Heads, KvHeads, 32, causal: true, dropout: 0.5f),
             new TransformerBlock(context, C, Heads, KvHeads, 32, causal: true, dropout: 0.5f)]);
        ModuleFixtures.Randomize(blocks, 63);
        var x = TestData.Floats(new Random(64), B * T * C);
        using var cache = new KeyValueCache(context, 2, B, T, KvHeads, C / Heads);

        double[] full;
        blocks.Eval();
        using (GradientTape.NoGrad())
        {
            var (branch, residual) = blocks[0].Forward(new Variable(Tensor.FromArray<float>(context, x, B, T, C)), residual: null);
            (branch, residual) = blocks[1].Forward(branch, residual);
            full = Ops.Add(branch.Value, residual.Value).ToArray<float>().Select(v => (double)v).ToArray();
        }
        blocks.Train(trainingMode);
        var incremental = Decode([1, 2, 1, 1, 1], x, cache, tokens =>
        {
            var (branch, residual) = blocks[0].Forward(tokens, null, cache, 0);
            (branch, residual) = blocks[1].Forward(branch, residual, cache, 1);
            return new Variable(Ops.Add(branch.Value, residual.Value));
        });

        TestData.AssertClose(incremental, full, Tolerance, "incremental blocks");
    }

    [Fact]
    public void TheCacheRefusesTokensBeyondItsLength()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var attention = new MultiHeadAttention(context, C, Heads, KvHeads, causal: true);
        using var cache = new KeyValueCache(context, 1, 1, 2, KvHeads, C / Heads);
        var x = new Variable(Tensor.Create(context, Dtype.F32, 1, 3, C));

        Assert.Throws<ArgumentOutOfRangeException>(() => attention.Forward(x, cache, 0));
        cache.Advance(2);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Advance(1));
        cache.Reset();
        Assert.Equal(0, cache.Length);
    }

    /// <summary>Feeds the tokens of <paramref name="x"/> [B, T, C] in chunks of the given lengths, advancing the
    /// cache after each, and gathers the outputs into [B, T, C].</summary>
    private static float[] Decode(int[] chunks, float[] x, KeyValueCache cache, Func<Variable, Variable> step)
    {
        var context = cache.Keys(0).Context;
        var output = new float[B * T * C];
        var start = 0;
        foreach (var length in chunks)
        {
            using var stepScope = new TensorScope();
            var tokens = new float[B * length * C];
            for (var b = 0; b < B; b++)
            {
                Array.Copy(x, (b * T + start) * C, tokens, b * length * C, length * C);
            }
            var result = step(new Variable(Tensor.FromArray<float>(context, tokens, B, length, C))).Value.ToArray<float>();
            for (var b = 0; b < B; b++)
            {
                Array.Copy(result, b * length * C, output, (b * T + start) * C, length * C);
            }
            cache.Advance(length);
            start += length;
        }
        return output;
    }
}
