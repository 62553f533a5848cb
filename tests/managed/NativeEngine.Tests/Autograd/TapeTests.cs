using NativeEngine.Autograd;
using NativeEngine.Modules;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Autograd;

/// <summary>The semantics of <see cref="GradientTape"/>: gradient accumulation, recording rules, errors and the
/// release of native memory.</summary>
public sealed class TapeTests
{
    [Fact]
    public void AVariableUsedTwiceReceivesTheSumOfItsGradients()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(41);
        var x = GradientCheck.RandomLeaf(context, random, 1f, 3, 4);
        var weight = GradientCheck.RandomLeaf(context, random, 0.5f, 4, 4);

        // x + x: the gradient is exactly 2 R.
        var check = GradientCheck.Check(() => Fn.Add(x, x), [("x", x)], seed: 41);
        Assert.Equal(check.Projection.Select(r => (float)(2 * r)).ToArray(), check.Gradients[0]);

        // Two different uses, and a third through a chain.
        GradientCheck.Check(() => Fn.Add(Fn.Linear(x, weight), Fn.Gelu(Fn.Add(x, Fn.Gelu(x)))), [("x", x), ("weight", weight)],
            seed: 42);
    }

    [Fact]
    public void NoGradRecordsNothing()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(43);
        var x = GradientCheck.RandomLeaf(context, random, 1f, 2, 4);
        var weight = GradientCheck.RandomLeaf(context, random, 0.5f, 3, 4);
        var gamma = GradientCheck.RandomLeaf(context, random, 1f, 3);
        using var tape = new GradientTape();

        var recorded = Fn.Linear(x, weight);
        Assert.True(GradientTape.IsRecording);
        Assert.Equal(1, tape.NodeCount);
        using (GradientTape.NoGrad())
        {
            Assert.False(GradientTape.IsGradEnabled);
            Assert.False(GradientTape.IsRecording);
            var unrecorded = Fn.Gelu(Fn.Linear(x, weight));
            Assert.False(unrecorded.RequiresGrad);
            Assert.True(unrecorded.IsLeaf);
            var (normalized, _) = Fn.LayerNorm(recorded, null, gamma, null);
            Assert.False(normalized.RequiresGrad);
        }
        Assert.Equal(1, tape.NodeCount);
        Assert.True(GradientTape.IsGradEnabled);

        // Inputs that need no gradient are not recorded either.
        var constant = new Variable(Tensor.FromArray<float>(context, TestData.Floats(random, 8), 2, 4));
        Assert.False(Fn.Gelu(constant).RequiresGrad);
        Assert.Equal(1, tape.NodeCount);
        Assert.True(Fn.Gelu(recorded).RequiresGrad);
        Assert.Equal(2, tape.NodeCount);
    }

    [Fact]
    public void TapesDoNotNest()
    {
        using (var tape = new GradientTape())
        {
            var error = Assert.Throws<InvalidOperationException>(() => new GradientTape());
            Assert.Contains("do not nest", error.Message);
            Assert.Same(tape, GradientTape.Current);
        }
        Assert.Null(GradientTape.Current);
        using var next = new GradientTape();
        Assert.Same(next, GradientTape.Current);
    }

    [Fact]
    public void BackwardRunsOnceAndNothingRecordsAfterIt()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(44);
        var x = GradientCheck.RandomLeaf(context, random, 1f, 2, 3);
        int[] targets = [1, 2];
        var weight = GradientCheck.RandomLeaf(context, random, 1f, 4, 3);
        using var tape = new GradientTape();

        var loss = Fn.CrossEntropyLoss(x, weight, null, Tensor.FromArray<int>(context, targets));
        tape.Backward(loss);
        Assert.True(tape.HasRunBackward);
        Assert.Throws<InvalidOperationException>(() => tape.Backward(loss));
        Assert.Throws<InvalidOperationException>(() => Fn.Gelu(x));
        using (GradientTape.NoGrad())
        {
            Assert.False(Fn.Gelu(x).RequiresGrad);
        }
    }

    [Fact]
    public void BackwardRejectsWhatItCannotDifferentiate()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(45);
        var x = GradientCheck.RandomLeaf(context, random, 1f, 2, 3);
        var constant = new Variable(Tensor.FromArray<float>(context, TestData.Floats(random, 6), 2, 3));

        using (var tape = new GradientTape())
        {
            Assert.Throws<ArgumentException>(() => tape.Backward(Fn.Gelu(x)));  // not one element
            Assert.Throws<ArgumentException>(() => tape.Backward(Fn.Gelu(constant), constant.Value));  // no gradient
            Assert.False(tape.HasRunBackward);
        }
        Variable fromFirstTape;
        using (new GradientTape())
        {
            fromFirstTape = Fn.Gelu(x);
        }
        using (var second = new GradientTape())
        {
            Assert.Throws<ArgumentException>(() => second.Backward(fromFirstTape, constant.Value));
        }
    }

    [Fact]
    public void ARefusedOutputGradientLeavesTheTapeUsable()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var x = GradientCheck.RandomLeaf(context, new Random(49), 1f, 2, 3);
        using var tape = new GradientTape();
        var output = Fn.Gelu(x);

        Assert.Throws<NativeEngineException>(() => tape.Backward(output, Tensor.Create(context, Dtype.F32, 3, 2)));
        Assert.False(tape.HasRunBackward);
        tape.Backward(output, Tensor.Create(context, Dtype.F32, 2, 3));
        Assert.True(tape.HasRunBackward);
        Assert.Equal(new float[6], x.Grad!.ToArray<float>());
    }

    /// <summary>Ids, targets and key lengths the caller disposes right after the forward pass stay alive for
    /// the backward pass.</summary>
    [Fact]
    public void TheTapeKeepsItsNonDifferentiableInputsAlive()
    {
        using var context = Context.Create();
        var random = new Random(50);
        using var table = new Variable(Tensor.FromArray<float>(context, TestData.Floats(random, 6 * 16), 6, 16), requiresGrad: true);
        using var classes = new Variable(Tensor.FromArray<float>(context, TestData.Floats(random, 6 * 16), 6, 16), requiresGrad: true);
        using var qkvWeight = new Variable(Tensor.FromArray<float>(context, TestData.Floats(random, 32 * 16, 0.3f), 32, 16),
            requiresGrad: true);

        float[] Gradient(bool disposeEarly)
        {
            table.ZeroGrad();
            using var tape = new GradientTape();
            var ids = Tensor.FromArray<int>(context, [1, 2, 3, 4, 5, 0], 2, 3).MoveTo(null);
            var targets = Tensor.FromArray<int>(context, [2, 3, 4, 5, 0, -1], 2, 3).MoveTo(null);
            var lengths = Tensor.FromArray<int>(context, [3, 2]).MoveTo(null);
            var x = Fn.Embedding(table, ids);
            var attended = Fn.SelfAttention(Fn.Linear(x, qkvWeight), 4, 2, causal: false, lengths);
            var loss = Fn.CrossEntropyLoss(attended, classes, null, targets);
            if (disposeEarly)
            {
                ids.Dispose();
                targets.Dispose();
                lengths.Dispose();
            }
            tape.Backward(loss);
            if (!disposeEarly)
            {
                ids.Dispose();
                targets.Dispose();
                lengths.Dispose();
            }
            return table.Grad!.ToArray<float>();
        }

        Assert.Equal(Gradient(disposeEarly: false), Gradient(disposeEarly: true));
    }

    [Fact]
    public void ParameterGradientsAccumulateAcrossTapesUntilZeroGrad()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var linear = new Linear(context, 4, 3);
        Initialization.Initialize(linear.NamedParameters(), 46);
        var random = new Random(46);
        var x = GradientCheck.RandomLeaf(context, random, 1f, 5, 4);
        var targets = Tensor.FromArray<int>(context, [0, 2, 1, -1, 2]);
        var head = GradientCheck.RandomLeaf(context, random, 1f, 6, 3);

        (float[] Weight, float[] Bias, float[] X) Step()
        {
            using var tape = new GradientTape();
            tape.Backward(Fn.CrossEntropyLoss(Fn.Linear(x, linear.Weight, linear.Bias), head, null, targets));
            return (linear.Weight.Grad!.ToArray<float>(), linear.Bias!.Grad!.ToArray<float>(), x.Grad!.ToArray<float>());
        }

        var once = Step();
        var twice = Step();
        TestData.AssertClose(twice.Weight, once.Weight.Select(v => 2.0 * v).ToArray(), 1e-6, "weight grad after two tapes");
        TestData.AssertClose(twice.Bias, once.Bias.Select(v => 2.0 * v).ToArray(), 1e-6, "bias grad after two tapes");
        TestData.AssertClose(twice.X, once.X.Select(v => 2.0 * v).ToArray(), 1e-6, "leaf grad after two tapes");

        linear.ZeroGrad();
        x.ZeroGrad();
        Assert.All(linear.Weight.Grad!.ToArray<float>(), value => Assert.Equal(0f, value));
        linear.ZeroGrad();
        var afterZero = Step();
        Assert.Equal(once.Weight, afterZero.Weight);
        Assert.Equal(once.Bias, afterZero.Bias);
        Assert.Equal(once.X, afterZero.X);
    }

    [Fact]
    public void IntermediateGradientsAreReleasedUnlessRetained()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var x = GradientCheck.RandomLeaf(context, new Random(47), 1f, 2, 3);
        using var tape = new GradientTape();

        var hidden = Fn.Gelu(x);
        var retained = Fn.Gelu(hidden);
        retained.RetainGrad = true;
        var output = Fn.Add(retained, hidden);
        using var seed = Tensor.FromArray<float>(context, [1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        tape.Backward(output, seed);

        Assert.Null(hidden.Grad);
        Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], retained.Grad!.ToArray<float>());
        Assert.NotNull(x.Grad);
    }

    [Fact]
    public void DisposingTheTapeAndTheModulesReturnsTheLiveCountersToTheirBaseline()
    {
        using var context = Context.Create();
        var baseline = context.GetMemoryStats();
        var block = new TransformerBlock(context, 16, 4, 2, 32, causal: true, dropout: 0.1f);
        var blockStats = context.GetMemoryStats();
        var parameterCount = block.Parameters().Count();
        Assert.Equal(baseline.LiveTensors + parameterCount, blockStats.LiveTensors);

        var random = new Random(48);
        var x = GradientCheck.Leaf(context, TestData.Floats(random, 2 * 5 * 16), 2, 5, 16);
        var targets = Tensor.FromArray<int>(context, [1, 2, 3, 4, 5, 6, 7, 8, 9, -1], 2, 5);
        var before = context.GetMemoryStats();
        using (var tape = new GradientTape())
        {
            var loss = Fn.CrossEntropyLoss(block.Forward(x), block.Mlp.Fc.Weight, null, targets);
            tape.Backward(loss);
            Assert.True(context.GetMemoryStats().LiveTensors > before.LiveTensors + parameterCount + 1);
        }
        // What outlives the tape: one gradient per parameter and one for the leaf x.
        var after = context.GetMemoryStats();
        Assert.Equal(before.LiveTensors + parameterCount + 1, after.LiveTensors);
        Assert.Equal(before.LiveAllocations + parameterCount + 1, after.LiveAllocations);
        Assert.Equal(before.LiveBytes + (blockStats.LiveBytes - baseline.LiveBytes) + x.Value.ElementCount * sizeof(float),
            after.LiveBytes);

        block.Dispose();
        x.Dispose();
        targets.Dispose();
        var final = context.GetMemoryStats();
        Assert.Equal((baseline.LiveTensors, baseline.LiveAllocations, baseline.LiveBytes),
            (final.LiveTensors, final.LiveAllocations, final.LiveBytes));
    }

    /// <summary>A forward pass that is not recorded frees its intermediates when it returns: only its results
    /// remain, in the caller's scope.</summary>
    [Fact]
    public void AnUnrecordedForwardPassLeavesOnlyItsResults()
    {
        using var context = Context.Create();
        using var block = new TransformerBlock(context, 16, 4, 2, 32, causal: true, dropout: 0.1f);
        using var decoder = new DecoderBlock(context, 16, 4, 2, 32);
        using var cache = new KeyValueCache(context, 1, 2, 5, 2, 4);
        using var scope = new TensorScope();
        var random = new Random(51);
        var x = new Variable(Tensor.FromArray<float>(context, TestData.Floats(random, 2 * 5 * 16), 2, 5, 16));
        var memory = new Variable(Tensor.FromArray<float>(context, TestData.Floats(random, 2 * 3 * 16), 2, 3, 16));

        long Live() => context.GetMemoryStats().LiveTensors;
        var before = Live();
        using (GradientTape.NoGrad())
        {
            var output = block.Forward(x);
            Assert.Equal(before + 1, Live());
            Assert.True(scope.Contains(output.Value));
            _ = decoder.Forward(x, memory);
            Assert.Equal(before + 2, Live());
        }
        var (branch, residual) = block.Forward(x, null, cache, 0);
        Assert.Equal(before + 4, Live());
        Assert.True(scope.Contains(branch.Value) && scope.Contains(residual.Value));
    }
}
