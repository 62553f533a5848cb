namespace NativeEngine.Autograd;

/// <summary>
/// A value of the autograd graph: a <see cref="Tensor"/>, and the gradient of a loss with respect to it
/// once <see cref="GradientTape.Backward(Variable)"/> has run.
/// </summary>
/// <remarks>
/// <para>Three kinds of variables:</para>
/// <list type="bullet">
/// <item><description>Leaves that you create with <see cref="Variable(Tensor, bool, string?)"/>: inputs, and
/// with <c>requiresGrad: true</c>, values to differentiate with respect to. Their gradients persist across
/// tapes and accumulate (as in PyTorch) until <see cref="ZeroGrad"/>.</description></item>
/// <item><description><see cref="Parameter"/>s: leaves that own their value and gradient for a model's
/// lifetime.</description></item>
/// <item><description>Outputs of the differentiable functions of <see cref="Fn"/>. While a
/// <see cref="GradientTape"/> records, an output of an input that requires a gradient requires one too,
/// and its value lives in the tape's <see cref="GradientTape.Scope"/>. Their gradients are temporaries of
/// the backward pass: released as soon as the function that produced them has propagated them, unless
/// <see cref="RetainGrad"/> is set.</description></item>
/// </list>
/// <para>Ownership: a variable owns its value and gradient tensors. <see cref="Dispose()"/> disposes both,
/// which is never required for tensors that a <see cref="TensorScope"/> or a tape already owns (disposing
/// twice is harmless). The gradient of a leaf is created in the scope of its value (or owned by the
/// variable when the value has no scope).</para>
/// <para>The managed side never reads tensor memory: <see cref="Item"/> and the tensors' explicit copies
/// are the only ways to the host, so variables work the same on every backend.</para>
/// </remarks>
public class Variable : IDisposable
{
    private readonly Tensor _value;
    private bool _requiresGrad;

    /// <summary>Creates a leaf variable around <paramref name="value"/>.</summary>
    /// <param name="value">The value. Ownership: the variable takes it over (see <see cref="Dispose()"/>);
    /// it may still belong to a <see cref="TensorScope"/>, which then disposes it as well.</param>
    /// <param name="requiresGrad">Whether <see cref="GradientTape.Backward(Variable)"/> computes the gradient
    /// of this variable (f32 values only).</param>
    /// <param name="name">A name for messages and debugging, or null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="requiresGrad"/> is set and the value is not f32.</exception>
    public Variable(Tensor value, bool requiresGrad = false, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (requiresGrad && value.Dtype != Dtype.F32)
        {
            throw new ArgumentException($"Only f32 values can require a gradient; this one is {value.Dtype}.", nameof(value));
        }
        _value = value;
        _requiresGrad = requiresGrad;
        Name = name;
    }

    /// <summary>The value.</summary>
    public Tensor Value => _value;

    /// <summary>The gradient of the last backward pass with respect to this variable, of <see cref="Value"/>'s
    /// shape (contiguous, f32); <see langword="null"/> if none was computed (or, for an intermediate output
    /// without <see cref="RetainGrad"/>, once it was released).</summary>
    /// <remarks>After <see cref="ZeroGrad"/>, the buffer is kept but marked as holding zero without being
    /// written; reading this property then fills it with zeros first.</remarks>
    public Tensor? Grad
    {
        get
        {
            if (GradTensor is null)
            {
                return null;
            }
            if (!GradHasValue)
            {
                if (!HasPersistentGradient)
                {
                    return null;
                }
                GradTensor.Fill(0);
                GradHasValue = true;
            }
            return GradTensor;
        }
    }

    /// <summary>Whether the backward pass computes this variable's gradient. Settable on leaves (freezing or
    /// unfreezing a parameter); an output of <see cref="Fn"/> requires a gradient when it was recorded.</summary>
    /// <exception cref="InvalidOperationException">Set on an output of a differentiable function.</exception>
    /// <exception cref="ArgumentException">Set to true on a variable whose value is not f32.</exception>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (Producer is not null)
            {
                throw new InvalidOperationException("RequiresGrad can only be changed on a leaf variable, not on the output of a recorded function.");
            }
            if (value && _value.Dtype != Dtype.F32)
            {
                throw new ArgumentException($"Only f32 values can require a gradient; this one is {_value.Dtype}.", nameof(value));
            }
            _requiresGrad = value;
        }
    }

    /// <summary>A name for messages and debugging (parameters carry their hierarchical name, such as
    /// <c>blocks.0.attention.qkv.weight</c>), or null.</summary>
    public string? Name { get; set; }

    /// <summary>Whether this variable is a leaf (created directly, or a <see cref="Parameter"/>) rather than
    /// the output of a recorded function.</summary>
    public bool IsLeaf => Producer is null;

    /// <summary>Keep the gradient of this intermediate output after the backward pass (it is released as soon
    /// as it has been propagated otherwise). Has no effect on leaves, whose gradients always persist.</summary>
    public bool RetainGrad { get; set; }

    /// <summary>The dimensions of <see cref="Value"/>.</summary>
    public IReadOnlyList<long> Shape => _value.Shape;

    /// <summary>The context of <see cref="Value"/>.</summary>
    public Context Context => _value.Context;

    /// <summary>The function call that produced this variable on a tape, or null for a leaf.</summary>
    internal Node? Producer { get; set; }

    /// <summary>The gradient buffer, which may hold a stale value when <see cref="GradHasValue"/> is false.</summary>
    internal Tensor? GradTensor { get; set; }

    /// <summary>Whether <see cref="GradTensor"/> holds the gradient (false: logically zero, not yet written).</summary>
    internal bool GradHasValue { get; set; }

    /// <summary>Whether the gradient buffer outlives tapes (leaves and parameters) rather than being a
    /// temporary of one backward pass.</summary>
    internal bool HasPersistentGradient => Producer is null;

    /// <summary>Copies the value to the host as a float; for one-element f32 values such as a loss.</summary>
    /// <returns>The value's only element.</returns>
    /// <exception cref="InvalidOperationException">The value has more than one element, or is not f32.</exception>
    /// <exception cref="ObjectDisposedException">The value was disposed (such as with its tape).</exception>
    public float Item()
    {
        if (_value.ElementCount != 1 || _value.Dtype != Dtype.F32)
        {
            throw new InvalidOperationException(
                $"Item() needs a one-element f32 value; this one is {_value.Dtype} of shape [{string.Join(", ", _value.Shape)}].");
        }
        Span<float> one = stackalloc float[1];
        _value.CopyTo(one);
        return one[0];
    }

    /// <summary>Marks the gradient as zero without touching its memory: the next contribution of a backward pass
    /// overwrites it instead of adding to it, so zeroing costs nothing and nothing is reallocated.</summary>
    public void ZeroGrad() => GradHasValue = false;

    /// <summary>Allocates the gradient buffer where this kind of variable keeps it: in the tape's scope for an
    /// intermediate output, next to the value for a leaf.</summary>
    internal virtual Tensor AllocateGradient(GradientTape tape)
    {
        if (Producer is not null)
        {
            return tape.NewTensor(Context, _value.Shape);
        }
        var grad = GradientTape.CreateDetached(Context, _value.Shape);
        var scope = _value.Scope;
        if (scope is not null && !scope.IsDisposed)
        {
            grad.MoveTo(scope);
        }
        return grad;
    }

    /// <summary>Disposes the value and the gradient. Disposing the output of a recorded function before the
    /// backward pass breaks that pass. Calling it again does nothing.</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the tensors; overridden by <see cref="Parameter"/>.</summary>
    /// <param name="disposing">True when called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            GradTensor?.Dispose();
            _value.Dispose();
        }
    }

    /// <summary>Describes the variable, such as <c>Variable("x", [2, 3], requires grad)</c>.</summary>
    /// <returns>The description.</returns>
    public override string ToString()
    {
        var shape = _value.IsDisposed ? "disposed" : $"[{string.Join(", ", _value.Shape)}]";
        var name = Name is null ? "" : $"\"{Name}\", ";
        return $"{GetType().Name}({name}{shape}{(_requiresGrad ? ", requires grad" : "")})";
    }
}
