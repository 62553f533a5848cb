namespace NativeEngine.Autograd;

/// <summary>
/// A trainable leaf variable that owns its value and gradient tensors for a model's lifetime.
/// </summary>
/// <remarks>
/// <para>Ownership: the parameter owns its value and its gradient and disposes them in
/// <see cref="Variable.Dispose()"/>; neither belongs to any <see cref="TensorScope"/>, so tapes and scopes
/// never free them. The gradient is allocated by the first backward pass that reaches the parameter
/// (<see cref="Variable.Grad"/> is null until then) and reused afterwards: gradients accumulate over
/// backward passes until <see cref="Variable.ZeroGrad"/>, which marks the gradient as zero without writing
/// it: the next backward pass overwrites instead of adding.</para>
/// <para><see cref="Init"/> records how the parameter is initialized; <see cref="Initialization"/> draws
/// the values.</para>
/// </remarks>
public sealed class Parameter : Variable
{
    /// <summary>Creates a zero-filled f32 parameter.</summary>
    /// <param name="context">The context that holds the value.</param>
    /// <param name="shape">The dimensions.</param>
    /// <param name="init">How <see cref="Initialization.Initialize(IEnumerable{KeyValuePair{string, Parameter}}, ulong)"/>
    /// fills it.</param>
    /// <param name="name">A name, or null (modules set the hierarchical name).</param>
    /// <param name="requiresGrad">False freezes the parameter.</param>
    /// <returns>Ownership: the caller owns the parameter and must dispose it (modules dispose theirs).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="context"/> is null.</exception>
    /// <exception cref="NativeEngineException">The library refused the shape, or is out of memory.</exception>
    public Parameter(Context context, ReadOnlySpan<long> shape, ParameterInit init, string? name = null, bool requiresGrad = true)
        : base(GradientTape.CreateDetached(context ?? throw new ArgumentNullException(nameof(context)), shape), requiresGrad, name)
    {
        Init = init;
    }

    /// <summary>Creates a parameter around an existing f32 tensor (for example a loaded checkpoint entry).</summary>
    /// <param name="value">The value. Ownership: the parameter takes it over and detaches it from its
    /// <see cref="TensorScope"/>, if any.</param>
    /// <param name="init">How a later initialization fills it.</param>
    /// <param name="name">A name, or null.</param>
    /// <param name="requiresGrad">False freezes the parameter.</param>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="value"/> is not f32.</exception>
    public Parameter(Tensor value, ParameterInit init, string? name = null, bool requiresGrad = true)
        : base(Detach(value), requiresGrad, name)
    {
        Init = init;
    }

    /// <summary>How the parameter is initialized.</summary>
    public ParameterInit Init { get; }

    /// <summary>The number of elements of the value.</summary>
    public long ElementCount => Value.ElementCount;

    /// <inheritdoc />
    internal override Tensor AllocateGradient(GradientTape tape) => GradientTape.CreateDetached(Context, Value.Shape);

    private static Tensor Detach(Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Dtype != Dtype.F32)
        {
            throw new ArgumentException($"A parameter must be f32; this tensor is {value.Dtype}.", nameof(value));
        }
        return value.MoveTo(null);
    }
}

/// <summary>How a parameter's values are drawn by <see cref="Initialization"/>.</summary>
public enum ParameterInitKind
{
    /// <summary>All zeros (biases, LayerNorm beta).</summary>
    Zeros,
    /// <summary>All ones (LayerNorm gamma).</summary>
    Ones,
    /// <summary>Normal with mean 0 and standard deviation <see cref="ParameterInit.Std"/>.</summary>
    Normal,
}

/// <summary>The initialization of one parameter.</summary>
/// <param name="Kind">The distribution.</param>
/// <param name="Std">The standard deviation of <see cref="ParameterInitKind.Normal"/> (0 otherwise).</param>
public readonly record struct ParameterInit(ParameterInitKind Kind, float Std = 0f)
{
    /// <summary>All zeros.</summary>
    public static ParameterInit Zeros => new(ParameterInitKind.Zeros);

    /// <summary>All ones.</summary>
    public static ParameterInit Ones => new(ParameterInitKind.Ones);

    /// <summary>Normal with mean 0 and standard deviation <paramref name="std"/>.</summary>
    /// <param name="std">The standard deviation, finite and &gt;= 0.</param>
    /// <returns>The initialization.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="std"/> is negative or not finite.</exception>
    public static ParameterInit Normal(float std)
    {
        if (!float.IsFinite(std) || std < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(std), std, "The standard deviation must be finite and >= 0.");
        }
        return new(ParameterInitKind.Normal, std);
    }
}
