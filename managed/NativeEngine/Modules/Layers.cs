using NativeEngine.Autograd;

namespace NativeEngine.Modules;

/// <summary>A linear layer <c>y = x W^T + b</c> with a weight [out, in] (<see cref="Fn.Linear"/>).</summary>
public sealed class Linear : Module
{
    /// <summary>Creates a linear layer with zero-filled parameters; initialize them with
    /// <see cref="Initialization"/> (weight N(0, <paramref name="std"/>), bias zeros).</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="inFeatures">Input features, &gt;= 1.</param>
    /// <param name="outFeatures">Output features, &gt;= 1.</param>
    /// <param name="bias">Whether the layer has a bias.</param>
    /// <param name="std">The standard deviation of the weight's initialization.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns the layer and disposes it.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public Linear(Context context, int inFeatures, int outFeatures, bool bias = true, float std = 0.02f) : base(context)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outFeatures, 1);
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", new Parameter(context, [outFeatures, inFeatures], ParameterInit.Normal(std)));
        Bias = bias ? RegisterParameter("bias", new Parameter(context, [outFeatures], ParameterInit.Zeros)) : null;
    }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>The weight, [out, in].</summary>
    public Parameter Weight { get; }

    /// <summary>The bias, [out], or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>Applies the layer.</summary>
    /// <param name="x">The input, [..., in].</param>
    /// <returns>[..., out]. Ownership: see <see cref="Fn"/>.</returns>
    public Variable Forward(Variable x) => Fn.Linear(x, Weight, Bias);
}

/// <summary>A token embedding table [V, C] (<see cref="Fn.Embedding"/>).</summary>
public sealed class Embedding : Module
{
    /// <summary>Creates an embedding with a zero-filled table; initialization draws N(0, <paramref name="std"/>).</summary>
    /// <param name="context">The context of the table.</param>
    /// <param name="vocabularySize">V, the number of rows.</param>
    /// <param name="dimension">C, the width of a row.</param>
    /// <param name="std">The standard deviation of the initialization.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns the embedding and disposes it.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public Embedding(Context context, int vocabularySize, int dimension, float std = 0.02f) : base(context)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        VocabularySize = vocabularySize;
        Dimension = dimension;
        Weight = RegisterParameter("weight", new Parameter(context, [vocabularySize, dimension], ParameterInit.Normal(std)));
    }

    /// <summary>V.</summary>
    public int VocabularySize { get; }

    /// <summary>C.</summary>
    public int Dimension { get; }

    /// <summary>The table, [V, C].</summary>
    public Parameter Weight { get; }

    /// <summary>Looks up the rows of <paramref name="ids"/>.</summary>
    /// <param name="ids">i32 ids of any shape, in [0, V).</param>
    /// <returns>ids' shape + [C]. Ownership: see <see cref="Fn"/>.</returns>
    public Variable Forward(Tensor ids) => Fn.Embedding(Weight, ids);
}

/// <summary>LayerNorm over the last dimension with a scale (weight, ones) and a shift (bias, zeros), and the
/// fused residual add (<see cref="Fn.LayerNorm"/>).</summary>
public sealed class LayerNorm : Module
{
    /// <summary>Creates a LayerNorm with gamma = 1 and beta = 0.</summary>
    /// <param name="context">The context of the parameters.</param>
    /// <param name="dimension">C, the normalized dimension.</param>
    /// <param name="epsilon">Added to the variance.</param>
    /// <param name="bias">Whether the layer has a shift.</param>
    /// <remarks>Ownership: the caller (or the parent module) owns the layer and disposes it.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dimension"/> is not positive.</exception>
    public LayerNorm(Context context, int dimension, float epsilon = Ops.DefaultEpsilon, bool bias = true) : base(context)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        Dimension = dimension;
        Epsilon = epsilon;
        Weight = RegisterParameter("weight", new Parameter(context, [dimension], ParameterInit.Ones));
        Bias = bias ? RegisterParameter("bias", new Parameter(context, [dimension], ParameterInit.Zeros)) : null;
    }

    /// <summary>C.</summary>
    public int Dimension { get; }

    /// <summary>Added to the variance.</summary>
    public float Epsilon { get; }

    /// <summary>gamma, [C].</summary>
    public Parameter Weight { get; }

    /// <summary>beta, [C], or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>Normalizes <paramref name="x"/>.</summary>
    /// <param name="x">The input, [..., C].</param>
    /// <returns>The normalized output. Ownership: see <see cref="Fn"/>.</returns>
    public Variable Forward(Variable x) => Fn.LayerNorm(x, null, Weight, Bias, Epsilon).Output;

    /// <summary>Normalizes <c>x + residual</c>, returning the sum too (the residual stream of the next residual
    /// connection).</summary>
    /// <param name="x">The input (a branch's output), [..., C].</param>
    /// <param name="residual">The residual stream, [..., C]; or null (then the sum is <paramref name="x"/>).</param>
    /// <returns>The normalized output and the sum. Ownership: see <see cref="Fn"/>.</returns>
    public NormOutput Forward(Variable x, Variable? residual) => Fn.LayerNorm(x, residual, Weight, Bias, Epsilon);
}

/// <summary>Inverted dropout, active in training mode only (<see cref="Fn.Dropout"/>). Each call draws a new
/// mask from <see cref="Seed"/> and a call counter, so training is reproducible from the seed; nothing is
/// stored for the backward pass.</summary>
public sealed class Dropout : Module
{
    /// <summary>Creates a dropout layer.</summary>
    /// <param name="context">The context (the layer holds no tensors).</param>
    /// <param name="probability">The drop probability, in [0, 1).</param>
    /// <param name="seed">The seed of the masks (models set it from their seed and the module's name).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="probability"/> is outside [0, 1).</exception>
    public Dropout(Context context, float probability, ulong seed = 0) : base(context)
    {
        if (!(probability >= 0f && probability < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "The dropout probability must lie in [0, 1).");
        }
        Probability = probability;
        Seed = seed;
    }

    /// <summary>The drop probability.</summary>
    public float Probability { get; }

    /// <summary>The seed of the masks; setting it restarts <see cref="Calls"/>.</summary>
    public ulong Seed
    {
        get;
        set
        {
            field = value;
            Calls = 0;
        }
    }

    /// <summary>How many masks were drawn since the seed was set: call n uses the seed
    /// <c>Initialization.Mix(Seed, n)</c>.</summary>
    public long Calls { get; private set; }

    /// <summary>Applies dropout in training mode; returns <paramref name="x"/> itself in evaluation mode or with
    /// probability 0.</summary>
    /// <param name="x">The input.</param>
    /// <returns>The output. Ownership: see <see cref="Fn"/>.</returns>
    public Variable Forward(Variable x)
    {
        if (!IsTraining || Probability == 0f)
        {
            return x;
        }
        return Fn.Dropout(x, Probability, Initialization.Mix(Seed, (ulong)Calls++));
    }

    /// <summary>Seeds every <see cref="Dropout"/> under <paramref name="root"/> from <paramref name="seed"/> and
    /// its hierarchical name (<see cref="Initialization.StreamSeed"/>), and restarts their call counters.</summary>
    /// <param name="root">The root module.</param>
    /// <param name="seed">The seed.</param>
    public static void SeedAll(Module root, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(root);
        foreach (var (name, module) in root.NamedModules())
        {
            if (module is Dropout dropout)
            {
                dropout.Seed = Initialization.StreamSeed(seed, "dropout:" + name);
            }
        }
    }
}
