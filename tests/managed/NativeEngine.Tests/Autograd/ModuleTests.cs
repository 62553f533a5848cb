using NativeEngine.Autograd;
using NativeEngine.Modules;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Autograd;

/// <summary>The module tree (names, shared parameters, modes, ownership), the layers' shapes and forward values,
/// positional encodings and seeded initialization.</summary>
public sealed class ModuleTests
{
    [Fact]
    public void ParametersHaveHierarchicalNamesAndSharedOnesAreCountedOnce()
    {
        using var context = Context.Create();
        using var block = new TransformerBlock(context, 8, 2, 1, 16, causal: true);

        string[] expected =
        [
            "ln1.weight", "ln1.bias", "attention.qkv.weight", "attention.qkv.bias", "attention.proj.weight", "attention.proj.bias",
            "ln2.weight", "ln2.bias", "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias",
        ];
        Assert.Equal(expected, block.NamedParameters().Select(entry => entry.Key));
        // qkv: C + 2 Hkv D = 8 + 2 * 1 * 4 outputs.
        Assert.Equal([16L, 8L], block.Attention.Qkv!.Weight.Shape);
        Assert.Equal(4 * 8 + (16 * 8 + 16) + (8 * 8 + 8) + (16 * 8 + 16) + (8 * 16 + 8), block.ParameterCount);
        Assert.Contains(block.NamedModules(), entry => entry.Key == "attention.dropout" && entry.Value is Dropout);

        block.NameParameters();
        Assert.Equal("mlp.fc.weight", block.Mlp.Fc.Weight.Name);

        // A module's own parameters come before its children's: the shared table is listed once, as "tied".
        using var tied = new TiedPair(context);
        Assert.Equal(["tied"], tied.NamedParameters().Select(entry => entry.Key));
        Assert.Equal(12, tied.ParameterCount);
    }

    [Fact]
    public void RegistrationRejectsBadNames()
    {
        using var context = Context.Create();
        using var module = new OpenModule(context);
        module.Add("weight");
        foreach (var name in new[] { "a.b", "weight", "" })
        {
            using var parameter = new Parameter(context, [1], ParameterInit.Zeros);
            Assert.ThrowsAny<ArgumentException>(() => module.Add(name, parameter));
        }
        Assert.Throws<ArgumentException>(() => new MultiHeadAttention(context, 10, 4, 2, causal: true));
        Assert.Throws<ArgumentException>(() => new MultiHeadAttention(context, 8, 4, 3, causal: true));
    }

    [Fact]
    public void TrainAndEvalReachEveryDescendantAndSwitchDropout()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var mlp = new Mlp(context, 4, 8, dropout: 0.5f);
        ModuleFixtures.Randomize(mlp, 91);
        var x = new Variable(Tensor.FromArray<float>(context, TestData.Floats(new Random(91), 64), 16, 4));

        mlp.Eval();
        Assert.All(mlp.NamedModules(), entry => Assert.False(entry.Value.IsTraining));
        var evaluation = mlp.Forward(x).Value.ToArray<float>();
        Assert.Equal(evaluation, mlp.Forward(x).Value.ToArray<float>());

        mlp.Train();
        Assert.True(mlp.ResidualDropout.IsTraining);
        Dropout.SeedAll(mlp, 5);
        var first = mlp.Forward(x).Value.ToArray<float>();
        var second = mlp.Forward(x).Value.ToArray<float>();
        Assert.Equal(2, mlp.ResidualDropout.Calls);
        Assert.NotEqual(first, second);  // a new mask per call
        Dropout.SeedAll(mlp, 5);
        Assert.Equal(first, mlp.Forward(x).Value.ToArray<float>());  // reproducible from the seed
        // Inverted dropout: kept outputs are the evaluation outputs scaled by 1 / (1 - p).
        for (var i = 0; i < first.Length; i++)
        {
            Assert.True(first[i] == 0f || Math.Abs(first[i] - 2f * evaluation[i]) <= 1e-6 * Math.Max(1, Math.Abs(first[i])));
        }
    }

    [Fact]
    public void LayersMatchTheirDefinitions()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var random = new Random(92);
        using var linear = new Linear(context, 3, 2);
        using var norm = new LayerNorm(context, 3, epsilon: 1e-5f);
        ModuleFixtures.Randomize(linear, 92);
        ModuleFixtures.Randomize(norm, 93);
        var xs = TestData.Floats(random, 4 * 3);
        var x = new Variable(Tensor.FromArray<float>(context, xs, 4, 3));

        var w = linear.Weight.Value.ToArray<float>();
        var b = linear.Bias!.Value.ToArray<float>();
        var expected = new double[4 * 2];
        for (var n = 0; n < 4; n++)
        {
            for (var o = 0; o < 2; o++)
            {
                expected[n * 2 + o] = b[o] + Enumerable.Range(0, 3).Sum(i => (double)xs[n * 3 + i] * w[o * 3 + i]);
            }
        }
        TestData.AssertClose(linear.Forward(x).Value.ToArray<float>(), expected, 1e-6, "linear");

        var reference = Reference.NormForwardPass(xs, null, norm.Weight.Value.ToArray<float>(), norm.Bias!.Value.ToArray<float>(), 4, 3,
            1e-5f, rms: false);
        TestData.AssertClose(norm.Forward(x).Value.ToArray<float>(), reference.Y, 1e-5, "layernorm");
    }

    [Fact]
    public void PositionalEncodings()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        using var sinusoidal = new SinusoidalPositionalEncoding(context, 6, 4);
        using var learned = new LearnedPositionalEmbedding(context, 6, 4);
        ModuleFixtures.Randomize(learned, 94);

        var rows = sinusoidal.Forward(2, 3).Value.ToArray<float>();
        for (var p = 2; p < 5; p++)
        {
            for (var c = 0; c < 4; c++)
            {
                var angle = p / Math.Pow(10000, c / 2 * 2 / 4.0);
                Assert.Equal(c % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle), rows[(p - 2) * 4 + c], 6);
            }
        }
        Assert.False(sinusoidal.Forward(0, 1).RequiresGrad);
        Assert.Equal(learned.Weight.Value.ToArray<float>()[8..20], learned.Forward(2, 3).Value.ToArray<float>());
        Assert.Throws<ArgumentOutOfRangeException>(() => learned.Forward(4, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => sinusoidal.Forward(-1, 2));
    }

    [Fact]
    public void InitializationIsSeededPerNameAndHasTheRequestedSpread()
    {
        using var context = Context.Create();
        using var first = new Linear(context, 100, 100, std: 0.5f);
        using var second = new Linear(context, 100, 100, std: 0.5f);
        using var norm = new LayerNorm(context, 100);
        norm.Weight.Value.Fill(3);

        Initialization.Initialize(first.NamedParameters(), 7);
        Initialization.Initialize(second.NamedParameters(), 7);
        Initialization.Initialize(norm.NamedParameters(), 7);
        var values = first.Weight.Value.ToArray<float>();
        Assert.Equal(values, second.Weight.Value.ToArray<float>());
        Assert.All(first.Bias!.Value.ToArray<float>(), value => Assert.Equal(0f, value));
        Assert.All(norm.Weight.Value.ToArray<float>(), value => Assert.Equal(1f, value));

        // 10^4 draws: the mean is within 4 standard errors of 0 and the standard deviation within 3 %.
        var mean = values.Average(value => (double)value);
        var std = Math.Sqrt(values.Average(value => (value - mean) * (value - mean)));
        Assert.InRange(mean, -4 * 0.5 / 100, 4 * 0.5 / 100);
        Assert.InRange(std, 0.5 * 0.97, 0.5 * 1.03);

        // Another name or seed selects another stream; the stream is SplitMix64 from seed ^ FNV-1a(name).
        Initialization.Initialize(second.Weight, "other.weight", 7);
        Assert.NotEqual(values, second.Weight.Value.ToArray<float>());
        var expected = new float[values.Length];
        Initialization.FillNormal(expected, 0.5f, Initialization.StreamSeed(7, "weight"));
        Assert.Equal(expected, values);
    }

    private sealed class TiedPair : Module
    {
        public TiedPair(Context context) : base(context)
        {
            var embedding = new Embedding(context, 3, 4);
            RegisterParameter("tied", embedding.Weight);
            RegisterModule("embedding", embedding);
        }
    }

    private sealed class OpenModule(Context context) : Module(context)
    {
        public void Add(string name) => RegisterParameter(name, new Parameter(Context, [1], ParameterInit.Zeros));

        public void Add(string name, Parameter parameter) => RegisterParameter(name, parameter);
    }
}
