using NativeEngine.Autograd;
using NativeEngine.Checkpoints;
using NativeEngine.Modules;
using NativeEngine.Tests.Support;
using NativeEngine.Training;

namespace NativeEngine.Tests.Training;

public sealed class AdamWTests : IDisposable
{
    private readonly Context _context = Context.Create(new ContextOptions { NumThreads = 1 });

    public void Dispose() => _context.Dispose();

    [Fact]
    public void VectorsDoNotDecayAndMatricesDecayByLearningRateTimesWeightDecay()
    {
        using var module = new ParameterSet(_context, seed: 3, ("weight", [3, 4]), ("embedding", [5, 2]), ("bias", [4]), ("gain", [2]));
        using var optimizer = new AdamW(module, new AdamWOptions { WeightDecay = 0.05f });
        Assert.Equal([AdamW.DecayGroupName, AdamW.NoDecayGroupName], optimizer.Groups.Select(g => g.Name));
        Assert.Equal(["weight", "embedding"], optimizer.Groups[0].ParameterNames);
        Assert.Equal(0.05f, optimizer.Groups[0].WeightDecay);
        Assert.Equal(["bias", "gain"], optimizer.Groups[1].ParameterNames);
        Assert.Equal(0f, optimizer.Groups[1].WeightDecay);
        foreach (var parameter in module.Parameters())
        {
            SetGradient(parameter, new float[parameter.ElementCount]);
        }
        var before = module.Snapshot();

        optimizer.Step(learningRate: 0.1f);

        Assert.Equal(1, optimizer.StepCount);
        var after = module.Snapshot();
        Assert.Equal(Bits(before["bias"]), Bits(after["bias"]));
        Assert.Equal(Bits(before["gain"]), Bits(after["gain"]));
        foreach (var name in (string[])["weight", "embedding"])
        {
            for (var i = 0; i < before[name].Length; i++)
            {
                var p = (double)before[name][i];
                Assert.Equal(p - 0.1 * 0.05 * p, after[name][i], Math.Abs(p) * 1e-6);
                Assert.NotEqual(before[name][i], after[name][i]);
            }
        }
    }

    [Fact]
    public void StepsMatchADoublePrecisionReferenceWithBiasCorrection()
    {
        using var module = new ParameterSet(_context, seed: 5, ("weight", [4, 3]), ("bias", [3]));
        var options = new AdamWOptions { Beta1 = 0.8f, Beta2 = 0.95f, Epsilon = 1e-3f, WeightDecay = 0.1f };
        using var optimizer = new AdamW(module, options);
        var reference = module.NamedParameters().ToDictionary(e => e.Key, e => new ReferenceAdamW(e.Value.Value.ToArray<float>()));
        var random = new Random(11);
        float[] rates = [0.05f, 0.02f, 0.01f];
        for (var step = 1; step <= rates.Length; step++)
        {
            foreach (var (name, parameter) in module.NamedParameters())
            {
                var gradient = RandomValues(random, (int)parameter.ElementCount, 2);
                SetGradient(parameter, gradient);
                reference[name].Step(gradient, rates[step - 1], step, options, AdamW.Decays(parameter) ? options.WeightDecay : 0, gradScale: 1);
            }
            optimizer.Step(rates[step - 1]);
        }
        foreach (var (name, parameter) in module.NamedParameters())
        {
            var actual = parameter.Value.ToArray<float>();
            for (var i = 0; i < actual.Length; i++)
            {
                Assert.Equal(reference[name].Parameters[i], actual[i], 2e-6);
            }
        }
    }

    [Fact]
    public void ClippingToATinyNormEqualsStepsWithManuallyScaledGradients()
    {
        const float maxNorm = 1e-3f;
        // Epsilon of the order of the clipped gradients, so that the update depends on their scale.
        var baseOptions = new AdamWOptions { Epsilon = 1e-4f, WeightDecay = 0f };
        using var clipped = new ParameterSet(_context, seed: 9, ("weight", [6, 5]), ("bias", [5]));
        using var scaled = new ParameterSet(_context, seed: 9, ("weight", [6, 5]), ("bias", [5]));
        using var unclipped = new ParameterSet(_context, seed: 9, ("weight", [6, 5]), ("bias", [5]));
        using var clippingOptimizer = new AdamW(clipped, baseOptions with { MaxGradNorm = maxNorm });
        using var scaledOptimizer = new AdamW(scaled, baseOptions);
        using var unclippedOptimizer = new AdamW(unclipped, baseOptions);
        var random = new Random(4);
        var gradients = clipped.NamedParameters().ToDictionary(e => e.Key, e => RandomValues(random, (int)e.Value.ElementCount, 1));
        var norm = Math.Sqrt(gradients.Values.SelectMany(g => g).Sum(g => (double)g * g));
        var factor = maxNorm / norm;
        foreach (var name in gradients.Keys)
        {
            SetGradient(Named(clipped, name), gradients[name]);
            SetGradient(Named(unclipped, name), gradients[name]);
            SetGradient(Named(scaled, name), [.. gradients[name].Select(g => (float)(g * factor))]);
        }

        clippingOptimizer.Step(0.1f);
        scaledOptimizer.Step(0.1f, computeGradientNorm: true);
        unclippedOptimizer.Step(0.1f);

        Assert.Equal(norm, clippingOptimizer.ReadGradientNorm(), norm * 1e-6);
        Assert.Equal(maxNorm, scaledOptimizer.ReadGradientNorm(), maxNorm * 1e-6);
        var differsFromUnclipped = false;
        foreach (var name in gradients.Keys)
        {
            var expected = Named(scaled, name).Value.ToArray<float>();
            var actual = Named(clipped, name).Value.ToArray<float>();
            var plain = Named(unclipped, name).Value.ToArray<float>();
            for (var i = 0; i < expected.Length; i++)
            {
                Assert.Equal(expected[i], actual[i], 1e-6);
                differsFromUnclipped |= Math.Abs(plain[i] - actual[i]) > 1e-3;
            }
        }
        Assert.True(differsFromUnclipped, "The clipped update should differ from the unclipped one; the test would prove nothing.");
    }

    [Fact]
    public void GradientScaleAppliesToTheUpdateAndToTheReportedNorm()
    {
        var options = new AdamWOptions { Epsilon = 1e-1f, WeightDecay = 0f, MaxGradNorm = 100f };
        using var halved = new ParameterSet(_context, seed: 2, ("weight", [3, 3]));
        using var reference = new ParameterSet(_context, seed: 2, ("weight", [3, 3]));
        using var halvedOptimizer = new AdamW(halved, options);
        using var referenceOptimizer = new AdamW(reference, options);
        var gradient = RandomValues(new Random(8), 9, 1);
        SetGradient(Named(halved, "weight"), [.. gradient.Select(g => 2 * g)]);
        SetGradient(Named(reference, "weight"), gradient);

        halvedOptimizer.Step(0.5f, gradScale: 0.5f);
        referenceOptimizer.Step(0.5f);

        Assert.Equal(Bits(Named(reference, "weight").Value.ToArray<float>()), Bits(Named(halved, "weight").Value.ToArray<float>()));
        Assert.Equal(referenceOptimizer.ReadGradientNorm(), halvedOptimizer.ReadGradientNorm(), 1e-6);
    }

    [Fact]
    public void AParameterWithoutGradientCountsAsZeroAndFrozenParametersAreLeftOut()
    {
        using var module = new ParameterSet(_context, seed: 4, ("weight", [2, 2]), ("bias", [2]));
        Named(module, "bias").RequiresGrad = false;
        using var optimizer = new AdamW(module, new AdamWOptions { WeightDecay = 0.5f });
        Assert.Equal(["weight"], optimizer.StateTensors().Keys.Select(k => k[..^2]).Distinct());
        var before = module.Snapshot();

        optimizer.Step(0.1f);

        Assert.Null(Named(module, "weight").Grad);
        var after = module.Snapshot();
        Assert.Equal(Bits(before["bias"]), Bits(after["bias"]));
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(before["weight"][i] * (1 - 0.1 * 0.5), after["weight"][i], 1e-6);
        }
        Assert.Throws<InvalidOperationException>(() => optimizer.ReadGradientNorm());
    }

    [Fact]
    public void StateRoundTripsThroughSafetensorsAndContinuesBitForBit()
    {
        using var temp = new TempDirectory();
        using var first = new ParameterSet(_context, seed: 6, ("weight", [3, 2]), ("bias", [2]));
        using var second = new ParameterSet(_context, seed: 6, ("weight", [3, 2]), ("bias", [2]));
        using var straight = new AdamW(first, new AdamWOptions { MaxGradNorm = 0.5f });
        var random = new Random(3);
        var gradients = Enumerable.Range(0, 4).Select(_ => first.Parameters().Select(p => RandomValues(random, (int)p.ElementCount, 1)).ToArray()).ToArray();
        for (var step = 0; step < 2; step++)
        {
            Apply(first, gradients[step]);
            straight.Step(0.01f);
        }
        var writer = new SafeTensorsWriter();
        straight.AddStateTo(writer);
        writer.Save(temp.File("optimizer.safetensors"), TestContext.Current.CancellationToken);
        foreach (var (name, parameter) in first.NamedParameters())
        {
            Named(second, name).Value.CopyFrom(parameter.Value);
        }

        using var resumed = new AdamW(second, new AdamWOptions { MaxGradNorm = 0.5f });
        using (var file = SafeTensorsFile.Open(temp.File("optimizer.safetensors")))
        {
            Assert.Equal(2, resumed.ValidateState(file));
            resumed.LoadState(file, TestContext.Current.CancellationToken);
        }
        Assert.Equal(2, resumed.StepCount);
        for (var step = 2; step < 4; step++)
        {
            Apply(first, gradients[step]);
            straight.Step(0.01f);
            Apply(second, gradients[step]);
            resumed.Step(0.01f);
        }
        foreach (var (name, parameter) in first.NamedParameters())
        {
            Assert.Equal(Bits(parameter.Value.ToArray<float>()), Bits(Named(second, name).Value.ToArray<float>()));
        }
        foreach (var (name, tensor) in straight.StateTensors())
        {
            Assert.Equal(Bits(tensor.ToArray<float>()), Bits(resumed.StateTensors()[name].ToArray<float>()));
        }
    }

    [Fact]
    public void AStateOfAnotherModelIsRefusedWithoutChangingAnything()
    {
        using var temp = new TempDirectory();
        using var source = new ParameterSet(_context, seed: 1, ("weight", [3, 2]), ("bias", [2]));
        using var sourceOptimizer = new AdamW(source);
        var writer = new SafeTensorsWriter();
        sourceOptimizer.AddStateTo(writer);
        writer.Save(temp.File("optimizer.safetensors"), TestContext.Current.CancellationToken);
        using var other = new ParameterSet(_context, seed: 1, ("weight", [2, 3]), ("bias", [2]));
        using var optimizer = new AdamW(other);
        using var file = SafeTensorsFile.Open(temp.File("optimizer.safetensors"));

        var error = Assert.Throws<CheckpointException>(() => optimizer.LoadState(file, TestContext.Current.CancellationToken));

        Assert.Contains("optimizer.safetensors", error.Message);
        Assert.Contains("'weight.m' is F32 [3, 2], the optimizer needs F32 [2, 3]", error.Message);
        Assert.Equal(0, optimizer.StepCount);
    }

    [Fact]
    public void InvalidOptionsAndArgumentsAreRefused()
    {
        using var module = new ParameterSet(_context, seed: 1, ("weight", [2, 2]));
        Assert.Contains("Beta1", Assert.Throws<ArgumentException>(() => new AdamW(module, new AdamWOptions { Beta1 = 1f })).Message);
        Assert.Contains("MaxGradNorm", Assert.Throws<ArgumentException>(() => new AdamW(module, new AdamWOptions { MaxGradNorm = -1f })).Message);
        using var optimizer = new AdamW(module);
        Assert.Throws<ArgumentOutOfRangeException>("learningRate", () => optimizer.Step(float.NaN));
        Assert.Throws<ArgumentOutOfRangeException>("gradScale", () => optimizer.Step(0.1f, gradScale: 0f));
    }

    internal static void SetGradient(Parameter parameter, float[] values)
    {
        parameter.GradTensor ??= GradientTape.CreateDetached(parameter.Context, parameter.Shape);
        parameter.GradTensor.CopyFrom<float>(values);
        parameter.GradHasValue = true;
    }

    private static void Apply(ParameterSet module, float[][] gradients)
    {
        var parameters = module.Parameters().ToArray();
        for (var i = 0; i < parameters.Length; i++)
        {
            SetGradient(parameters[i], gradients[i]);
        }
    }

    private static Parameter Named(Module module, string name) => module.NamedParameters().Single(e => e.Key == name).Value;

    private static float[] RandomValues(Random random, int count, double scale) =>
        [.. Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale))];

    private static int[] Bits(float[] values) => [.. values.Select(BitConverter.SingleToInt32Bits)];

    /// <summary>Parameters of the given names and shapes, initialized N(0, 0.5) from a seed.</summary>
    private sealed class ParameterSet : Module
    {
        public ParameterSet(Context context, ulong seed, params (string Name, long[] Shape)[] parameters) : base(context)
        {
            foreach (var (name, shape) in parameters)
            {
                RegisterParameter(name, new Parameter(context, shape, ParameterInit.Normal(0.5f)));
            }
            Initialization.Initialize(NamedParameters(), seed);
        }

        public Dictionary<string, float[]> Snapshot() =>
            NamedParameters().ToDictionary(e => e.Key, e => e.Value.Value.ToArray<float>());
    }

    /// <summary>AdamW in double precision, as Loshchilov and Hutter (PyTorch's torch.optim.AdamW).</summary>
    private sealed class ReferenceAdamW(float[] parameters)
    {
        private readonly double[] _m = new double[parameters.Length];
        private readonly double[] _v = new double[parameters.Length];

        public double[] Parameters { get; } = [.. parameters.Select(p => (double)p)];

        public void Step(float[] gradient, double learningRate, int step, AdamWOptions options, double weightDecay, double gradScale)
        {
            for (var i = 0; i < Parameters.Length; i++)
            {
                var g = gradient[i] * gradScale;
                _m[i] = options.Beta1 * _m[i] + (1 - (double)options.Beta1) * g;
                _v[i] = options.Beta2 * _v[i] + (1 - (double)options.Beta2) * g * g;
                var mHat = _m[i] / (1 - Math.Pow(options.Beta1, step));
                var vHat = _v[i] / (1 - Math.Pow(options.Beta2, step));
                Parameters[i] -= learningRate * (mHat / (Math.Sqrt(vHat) + options.Epsilon) + weightDecay * Parameters[i]);
            }
        }
    }
}
