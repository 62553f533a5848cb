using NativeEngine.Autograd;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Autograd;

/// <summary>Every differentiable function of <see cref="Fn"/> and its options against finite differences of
/// <c>sum(R * f)</c> (see <see cref="GradientCheck"/>), plus exact properties where they exist (dropout's mask,
/// repeated embedding ids, the loss values against double references).</summary>
public sealed class FnGradientTests
{
    // Finite differences of the f32 forward pass with h = 1e-2 on values of order 1: the five-point stencil's
    // truncation error is O(h^4) and the rounding noise about 1e-6 / h relative; the largest error observed over
    // these cases is 3e-4 of the gradient's scale.
    private const double Step = 1e-2;
    private const double Tolerance = 2e-3;

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public void Linear(bool withBias, bool threeDimensional)
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(1, withBias ? 1 : 0, threeDimensional ? 1 : 0));
        var x = threeDimensional ? GradientCheck.RandomLeaf(context, random, 1f, 2, 3, 5) : GradientCheck.RandomLeaf(context, random, 1f, 4, 5);
        var weight = GradientCheck.RandomLeaf(context, random, 0.5f, 6, 5);
        var bias = withBias ? GradientCheck.RandomLeaf(context, random, 0.5f, 6) : null;
        List<(string, Variable)> inputs = [("x", x), ("weight", weight)];
        if (bias is not null)
        {
            inputs.Add(("bias", bias));
        }

        GradientCheck.Check(() => Fn.Linear(x, weight, bias), inputs, seed: 11, Step, Tolerance);
    }

    [Theory]
    [InlineData(new long[] { 2, 3, 4 })]
    [InlineData(new long[] { 3, 4 })]
    [InlineData(new long[] { 4 })]
    public void AddBroadcastsOverTheLeadingDimensions(long[] bShape)
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(2, bShape.Length));
        var a = GradientCheck.RandomLeaf(context, random, 1f, 2, 3, 4);
        var b = GradientCheck.RandomLeaf(context, random, 1f, bShape);

        // Gelu after the sum makes the objective non-linear, so a wrong sum would show.
        GradientCheck.Check(() => Fn.Gelu(Fn.Add(a, b)), [("a", a), ("b", b)], seed: 12, Step, Tolerance);
    }

    [Fact]
    public void Gelu()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var x = GradientCheck.RandomLeaf(context, new Random(3), 3f, 3, 7);

        GradientCheck.Check(() => Fn.Gelu(x), [("x", x)], seed: 13, Step, Tolerance, coordinates: 21);
    }

    [Fact]
    public void DropoutGradientIsTheMaskTimesTheScale()
    {
        const float probability = 0.25f;
        const ulong seed = 7;
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(4);
        var values = TestData.Floats(random, 64, 1f, center: 2f);  // never 0, so a zero output means dropped
        var x = GradientCheck.Leaf(context, values, 8, 8);

        var check = GradientCheck.Check(() => Fn.Dropout(x, probability, seed), [("x", x)], seed: 14, Step, Tolerance);

        var output = Fn.Dropout(x, probability, seed).Value.ToArray<float>();
        var scale = 1f / (1f - probability);
        var dropped = 0;
        for (var i = 0; i < values.Length; i++)
        {
            var kept = output[i] != 0f;
            dropped += kept ? 0 : 1;
            Assert.Equal(kept ? values[i] * scale : 0f, output[i], 6);
            Assert.Equal(kept ? (float)check.Projection[i] * scale : 0f, check.Gradients[0][i], 6);
        }
        Assert.InRange(dropped, 4, 32);
    }

    [Fact]
    public void DropoutWithProbabilityZeroIsTheIdentity()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var x = GradientCheck.RandomLeaf(context, new Random(5), 1f, 3, 4);

        Assert.Same(x, Fn.Dropout(x, 0f, 1));
    }

    [Fact]
    public void EmbeddingAccumulatesRepeatedIds()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var table = GradientCheck.RandomLeaf(context, new Random(6), 1f, 5, 4);
        int[] idValues = [3, 1, 3, 0, 3, 1];
        var ids = Tensor.FromArray<int>(context, idValues, 2, 3);

        var check = GradientCheck.Check(() => Fn.Embedding(table, ids), [("table", table)], seed: 16, Step, Tolerance,
            coordinates: 20);
        var gradient = check.Gradients[0];

        // dtable[v] = sum of the projection's rows whose id is v: exact up to the order of the float additions.
        var expected = new double[5 * 4];
        for (var n = 0; n < idValues.Length; n++)
        {
            for (var c = 0; c < 4; c++)
            {
                expected[idValues[n] * 4 + c] += check.Projection[n * 4 + c];
            }
        }
        TestData.AssertClose(gradient, expected, 1e-6, "dtable");
        Assert.All(gradient.AsSpan(2 * 4, 4).ToArray(), value => Assert.Equal(0f, value));  // id 2 is unused
    }

    [Fact]
    public void ReshapeAsOutputAndInsideAChain()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(7);
        var x = GradientCheck.RandomLeaf(context, random, 1f, 2, 6);
        var weight = GradientCheck.RandomLeaf(context, random, 0.5f, 5, 4);

        GradientCheck.Check(() => Fn.Reshape(x, 4, -1), [("x", x)], seed: 17, Step, Tolerance);
        GradientCheck.Check(() => Fn.Linear(Fn.Reshape(Fn.Gelu(x), 3, 4), weight), [("x", x), ("weight", weight)], seed: 18,
            Step, Tolerance);
    }

    [Fact]
    public void ReshapeRejectsAWrongElementCount()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var x = GradientCheck.RandomLeaf(context, new Random(8), 1f, 2, 6);

        Assert.Throws<ArgumentException>(() => Fn.Reshape(x, 5, -1));
        Assert.Throws<ArgumentException>(() => Fn.Reshape(x, -1, -1));
        Assert.Throws<ArgumentException>(() => Fn.Reshape(x, 4, 4));
    }

    [Fact]
    public void NarrowSlicesOverlapAndAccumulate()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var x = GradientCheck.RandomLeaf(context, new Random(9), 1f, 5, 2, 3);

        GradientCheck.Check(() => Fn.Gelu(Fn.Narrow(x, 1, 3)), [("x", x)], seed: 19, Step, Tolerance, coordinates: 30);
        GradientCheck.Check(() => Fn.Add(Fn.Gelu(Fn.Narrow(x, 0, 3)), Fn.Narrow(x, 2, 3)), [("x", x)], seed: 20, Step,
            Tolerance, coordinates: 30);
        Assert.Throws<ArgumentOutOfRangeException>(() => Fn.Narrow(x, 3, 3));
    }

    public static TheoryData<bool, bool, bool> NormCases()
    {
        var data = new TheoryData<bool, bool, bool>();
        foreach (var rms in new[] { false, true })
        {
            foreach (var residual in new[] { false, true })
            {
                foreach (var intermediate in new[] { false, true })
                {
                    data.Add(rms, residual, intermediate);
                }
            }
        }
        return data;
    }

    /// <summary>Both outputs contribute: <c>f = y + Gelu(s)</c>, where s is the sum (x itself without a
    /// residual). With <paramref name="intermediate"/>, the normalized input is the output of a recorded function
    /// rather than a leaf.</summary>
    [Theory]
    [MemberData(nameof(NormCases))]
    public void NormalizationWithAndWithoutResidual(bool rms, bool withResidual, bool intermediate)
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(10, rms ? 1 : 0, withResidual ? 1 : 0, intermediate ? 1 : 0));
        var x = GradientCheck.RandomLeaf(context, random, 1f, 2, 3, 6);
        var residual = withResidual ? GradientCheck.RandomLeaf(context, random, 1f, 2, 3, 6) : null;
        var gamma = GradientCheck.Leaf(context, TestData.Floats(random, 6, 0.3f, center: 1f), 6);
        var beta = rms ? null : GradientCheck.RandomLeaf(context, random, 0.3f, 6);
        var weight = GradientCheck.RandomLeaf(context, random, 0.5f, 6, 6);
        List<(string, Variable)> inputs = [("x", x), ("gamma", gamma)];
        if (residual is not null)
        {
            inputs.Add(("residual", residual));
        }
        if (beta is not null)
        {
            inputs.Add(("beta", beta));
        }
        if (intermediate)
        {
            inputs.Add(("weight", weight));
        }

        Variable Forward()
        {
            var input = intermediate ? Fn.Linear(x, weight) : x;
            var (output, sum) = rms ? Fn.RmsNorm(input, residual, gamma) : Fn.LayerNorm(input, residual, gamma, beta);
            Assert.True(withResidual || ReferenceEquals(sum, input));
            return Fn.Add(output, Fn.Gelu(sum));
        }

        GradientCheck.Check(Forward, inputs, seed: 21, Step, Tolerance);
    }

    [Fact]
    public void NormalizationWhoseSumIsUnused()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(22);
        var x = GradientCheck.RandomLeaf(context, random, 1f, 4, 5);
        var residual = GradientCheck.RandomLeaf(context, random, 1f, 4, 5);
        var gamma = GradientCheck.Leaf(context, TestData.Floats(random, 5, 0.3f, center: 1f), 5);
        var beta = GradientCheck.RandomLeaf(context, random, 0.3f, 5);

        GradientCheck.Check(() => Fn.LayerNorm(x, residual, gamma, beta).Output,
            [("x", x), ("residual", residual), ("gamma", gamma), ("beta", beta)], seed: 22, Step, Tolerance);
        GradientCheck.Check(() => Fn.RmsNorm(x, residual, gamma).Sum, [("x", x), ("residual", residual)], seed: 23, Step,
            Tolerance);
    }

    public static TheoryData<bool, int, int, int[]?> SelfAttentionCases() => new()
    {
        // Plain multi-head; causal; causal grouped-query.
        { false, 4, 5, null },
        { true, 4, 5, null },
        { true, 2, 5, null },
        // Multi-query with key lengths 2 < T: causal rows 0 and 1 of sequence 1 see no key.
        { true, 1, 5, new[] { 5, 2 } },
        // Sequence 1 entirely masked.
        { false, 2, 5, new[] { 3, 0 } },
        // One token.
        { true, 2, 1, null },
        { false, 2, 1, new[] { 1, 1 } },
    };

    [Theory]
    [MemberData(nameof(SelfAttentionCases))]
    public void SelfAttentionOnFusedQkv(bool causal, int kvHeads, int tokens, int[]? lengths)
    {
        const int batch = 2, heads = 4, headDim = 4;
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(24, causal ? 1 : 0, kvHeads, tokens, lengths?.Sum() ?? -1));
        var qkv = GradientCheck.RandomLeaf(context, random, 1f, batch, tokens, (heads + 2 * kvHeads) * headDim);
        var keyLengths = lengths is null ? null : Tensor.FromArray<int>(context, lengths);

        var gradient = GradientCheck.Check(() => Fn.SelfAttention(qkv, heads, kvHeads, causal, keyLengths), [("qkv", qkv)],
            seed: 24, Step, Tolerance, directions: 4, coordinates: 24).Gradients[0];

        if (lengths is [_, 0])
        {
            // A sequence without keys has output 0 and no gradient at all.
            var width = (heads + 2 * kvHeads) * headDim;
            Assert.All(gradient.AsSpan(tokens * width, tokens * width).ToArray(), value => Assert.Equal(0f, value));
        }
    }

    [Fact]
    public void SelfAttentionRejectsAWidthThatDoesNotSplitIntoHeads()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var qkv = GradientCheck.RandomLeaf(context, new Random(25), 1f, 1, 2, 30);

        Assert.Throws<ArgumentException>(() => Fn.SelfAttention(qkv, 4, 2, causal: true));
        Assert.Throws<ArgumentException>(() => Fn.SelfAttention(qkv, 0, 2, causal: true));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void CrossAttentionOnFusedKeyValues(bool causal, bool withLengths)
    {
        const int batch = 2, tq = 3, tk = 5, heads = 4, kvHeads = 2, headDim = 4;
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(26, causal ? 1 : 0, withLengths ? 1 : 0));
        var q = GradientCheck.RandomLeaf(context, random, 1f, batch, tq, heads * headDim);
        var kv = GradientCheck.RandomLeaf(context, random, 1f, batch, tk, 2 * kvHeads * headDim);
        var keyLengths = withLengths ? Tensor.FromArray<int>(context, [tk, 4]) : null;

        GradientCheck.Check(() => Fn.CrossAttention(q, kv, heads, kvHeads, keyLengths, causal), [("q", q), ("kv", kv)],
            seed: 26, Step, Tolerance, directions: 4, coordinates: 16);
    }

    [Fact]
    public void AttentionWithFewerQueriesThanKeysCausal()
    {
        const int batch = 2, tq = 3, tk = 5, heads = 4, kvHeads = 2, headDim = 4;
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(27);
        var q = GradientCheck.RandomLeaf(context, random, 1f, batch, tq, heads, headDim);
        var k = GradientCheck.RandomLeaf(context, random, 1f, batch, tk, kvHeads, headDim);
        var v = GradientCheck.RandomLeaf(context, random, 1f, batch, tk, kvHeads, headDim);
        var keyLengths = Tensor.FromArray<int>(context, [tk, 4]);

        GradientCheck.Check(() => Fn.Attention(q, k, v, causal: true, keyLengths), [("q", q), ("k", k), ("v", v)], seed: 27,
            Step, Tolerance, directions: 4, coordinates: 16);
        // One variable as both keys and values: two contributions to one gradient.
        GradientCheck.Check(() => Fn.Attention(q, k, k, causal: true), [("q", q), ("k", k)], seed: 28, Step, Tolerance,
            directions: 4, coordinates: 16);
    }

    [Theory]
    [InlineData(true, 0L)]
    [InlineData(false, 3L)]
    public void CrossEntropyLossWithIgnoredTargets(bool withBias, long chunkSize)
    {
        const int rows = 6, dim = 4, classes = 7;
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(29, withBias ? 1 : 0, chunkSize));
        var hidden = GradientCheck.RandomLeaf(context, random, 1f, 2, 3, dim);
        var weight = GradientCheck.RandomLeaf(context, random, 1f, classes, dim);
        var bias = withBias ? GradientCheck.RandomLeaf(context, random, 0.5f, classes) : null;
        int[] targetValues = [3, -1, 6, 0, -1, 3];
        var targets = Tensor.FromArray<int>(context, targetValues, 2, 3);
        List<(string, Variable)> inputs = [("hidden", hidden), ("weight", weight)];
        if (bias is not null)
        {
            inputs.Add(("bias", bias));
        }

        var gradients = GradientCheck.Check(() => Fn.CrossEntropyLoss(hidden, weight, bias, targets, chunkSize: chunkSize), inputs,
            seed: 29, Step, Tolerance, coordinates: 12).Gradients;

        // Ignored rows get no gradient.
        foreach (var row in new[] { 1, 4 })
        {
            Assert.All(gradients[0].AsSpan(row * dim, dim).ToArray(), value => Assert.Equal(0f, value));
        }
        // The value: the mean over the 4 counted rows of logsumexp(z) - z_target, in double.
        var h = hidden.Value.ToArray<float>();
        var w = weight.Value.ToArray<float>();
        var b = bias?.Value.ToArray<float>();
        var expected = 0.0;
        for (var n = 0; n < rows; n++)
        {
            if (targetValues[n] < 0)
            {
                continue;
            }
            var logits = Enumerable.Range(0, classes).Select(c => Logit(h, w, b, n, c, dim)).ToArray();
            expected += LogSumExp(logits) - logits[targetValues[n]];
        }
        expected /= 4;
        using var noGrad = GradientTape.NoGrad();
        Assert.Equal(expected, Fn.CrossEntropyLoss(hidden, weight, bias, targets).Item(), 5);
        Assert.Equal(expected, Fn.CrossEntropyLoss(hidden, weight, bias, targets, targetCount: 4).Item(), 5);
        Assert.Equal(0f, Fn.CrossEntropyLoss(hidden, weight, bias, targets, targetCount: 0).Item());
        Assert.Throws<ArgumentOutOfRangeException>(() => Fn.CrossEntropyLoss(hidden, weight, bias, targets, targetCount: -1));
    }

    [Theory]
    [InlineData(true, true, true)]
    [InlineData(false, false, true)]
    [InlineData(true, false, false)]
    public void SampledSoftmaxLossWithFixedSamples(bool unique, bool removeAccidentalHits, bool withBias)
    {
        const int rows = 6, dim = 4, classes = 12, sampleCount = 5;
        const ulong seed = 31;
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(30, unique ? 1 : 0, removeAccidentalHits ? 1 : 0, withBias ? 1 : 0));
        var hidden = GradientCheck.RandomLeaf(context, random, 1f, rows, dim);
        var weight = GradientCheck.RandomLeaf(context, random, 1f, classes, dim);
        var bias = withBias ? GradientCheck.RandomLeaf(context, random, 0.5f, classes) : null;
        int[] targetValues = [0, 2, -1, 1, 7, 0];  // frequent classes, so that accidental hits occur
        var targets = Tensor.FromArray<int>(context, targetValues);
        List<(string, Variable)> inputs = [("hidden", hidden), ("weight", weight)];
        if (bias is not null)
        {
            inputs.Add(("bias", bias));
        }

        Variable Loss() => Fn.SampledSoftmaxLoss(hidden, weight, bias, targets, sampleCount, seed, unique: unique,
            removeAccidentalHits: removeAccidentalHits);

        var gradients = GradientCheck.Check(Loss, inputs, seed: 30, Step, Tolerance, coordinates: 16).Gradients;
        Assert.All(gradients[0].AsSpan(2 * dim, dim).ToArray(), value => Assert.Equal(0f, value));

        // The value against the definition, with the samples and expected counts of the same seed.
        var samples = Tensor.Create(context, Dtype.I32, sampleCount);
        var sampleCounts = Tensor.Create(context, Dtype.F32, sampleCount);
        var targetCounts = Tensor.Create(context, Dtype.F32, rows);
        Ops.SampleLogUniform(context, classes, seed, unique, samples, sampleCounts, targets, targetCounts);
        var s = samples.ToArray<int>();
        var sc = sampleCounts.ToArray<float>();
        var tc = targetCounts.ToArray<float>();
        var h = hidden.Value.ToArray<float>();
        var w = weight.Value.ToArray<float>();
        var b = bias?.Value.ToArray<float>();
        var expected = 0.0;
        var hits = 0;
        for (var n = 0; n < rows; n++)
        {
            var t = targetValues[n];
            if (t < 0)
            {
                continue;
            }
            var logits = new List<double> { Logit(h, w, b, n, t, dim) - Math.Log(tc[n]) };
            for (var j = 0; j < sampleCount; j++)
            {
                if (removeAccidentalHits && s[j] == t)
                {
                    hits++;
                    continue;
                }
                logits.Add(Logit(h, w, b, n, s[j], dim) - Math.Log(sc[j]));
            }
            expected += LogSumExp([.. logits]) - logits[0];
        }
        expected /= 5;
        using var noGrad = GradientTape.NoGrad();
        Assert.Equal(expected, Loss().Item(), 5);
        Assert.True(!removeAccidentalHits || hits > 0, "the case should exercise accidental hits");
    }

    private static double Logit(float[] h, float[] w, float[]? b, int row, int c, int dim)
    {
        var z = (double)(b?[c] ?? 0f);
        for (var d = 0; d < dim; d++)
        {
            z += (double)h[row * dim + d] * w[c * dim + d];
        }
        return z;
    }

    private static double LogSumExp(double[] values)
    {
        var max = values.Max();
        return max + Math.Log(values.Sum(value => Math.Exp(value - max)));
    }
}
