namespace NativeEngine.Autograd;

/// <summary>
/// Records the differentiable functions of <see cref="Fn"/> (and so of the modules and models) while it is
/// current, and runs them backward from a loss: reverse-mode automatic differentiation.
/// </summary>
/// <example>
/// <code>
/// using (var tape = new GradientTape())
/// {
///     var loss = model.Loss(ids, targets);      // recorded; activations live in tape.Scope
///     tape.Backward(loss);                      // parameter gradients are now in parameter.Grad
///     Console.WriteLine(loss.Item());
/// }                                             // every activation and temporary gradient freed here
/// </code>
/// </example>
/// <remarks>
/// <para>Ambient, like <see cref="TensorScope"/>: creating a tape makes it <see cref="Current"/> in this flow
/// of execution (an <see cref="AsyncLocal{T}"/>) until it is disposed. Tapes do not nest. A function records
/// when a tape is current, gradients are enabled (not inside <see cref="NoGrad"/>) and one of its inputs
/// requires a gradient; its output then requires one too.</para>
/// <para>Memory: the tape owns a <see cref="TensorScope"/> (<see cref="Scope"/>), current while the tape is,
/// which holds every activation that recorded functions create or keep for their backward pass (including the
/// views of ids, targets and key lengths they keep alive), every temporary of the backward pass and the
/// gradients of intermediate variables. Disposing the tape disposes all of them. Parameters and leaf
/// variables keep their gradients in their own storage, which outlives the tape.</para>
/// <para>Backward runs the recorded functions in reverse order. Each writes its input gradients with the
/// native kernels: the first contribution to a gradient overwrites it (the accumulate flags of the kernels
/// off, GEMM beta 0), later ones add (flags on, beta 1, or an in-place <c>ne_add</c>), so a variable used
/// several times receives the sum without any managed loop over elements. Gradients of intermediate
/// variables are released as soon as they have been propagated (unless <see cref="Variable.RetainGrad"/>),
/// and a function's output gradient is reused in place for its input gradient where the kernel allows it.
/// A tape runs one backward pass.</para>
/// <para>Threading: a tape and its variables must be used from one thread at a time, like their context.</para>
/// </remarks>
public sealed class GradientTape : IDisposable
{
    private static readonly AsyncLocal<GradientTape?> s_current = new();
    private static readonly AsyncLocal<bool> s_noGrad = new();

    private readonly TensorScope _scope;
    private readonly List<Node> _nodes = [];
    private bool _backwardStarted;
    private bool _disposed;

    /// <summary>Creates a tape and makes it <see cref="Current"/> (and its <see cref="Scope"/> the current
    /// <see cref="TensorScope"/>).</summary>
    /// <remarks>Ownership: the caller owns the tape and must dispose it (typically with <c>using</c>).</remarks>
    /// <exception cref="InvalidOperationException">Another tape is current: tapes do not nest.</exception>
    public GradientTape()
    {
        if (Current is not null)
        {
            throw new InvalidOperationException("A GradientTape is already current in this flow of execution; tapes do not nest. Dispose it first.");
        }
        _scope = new TensorScope();
        s_current.Value = this;
    }

    /// <summary>The tape that is current in this flow of execution and not disposed, or null.</summary>
    public static GradientTape? Current
    {
        get
        {
            var tape = s_current.Value;
            return tape is { _disposed: false } ? tape : null;
        }
    }

    /// <summary>Whether gradients are enabled in this flow of execution: false inside <see cref="NoGrad"/>.</summary>
    public static bool IsGradEnabled => !s_noGrad.Value;

    /// <summary>Whether functions record now: a tape is current, its backward pass has not run, and gradients
    /// are enabled.</summary>
    public static bool IsRecording => IsGradEnabled && Current is { _backwardStarted: false };

    /// <summary>The scope that owns the tape's activations, kept inputs and temporary gradients. Move a
    /// tensor out of it (<see cref="Tensor.MoveTo"/>) to keep it after the tape is disposed.</summary>
    public TensorScope Scope => _scope;

    /// <summary>The number of function calls recorded so far.</summary>
    public int NodeCount => _nodes.Count;

    /// <summary>Whether <see cref="Backward(Variable)"/> has run on this tape.</summary>
    public bool HasRunBackward => _backwardStarted;

    /// <summary>Whether the tape has been disposed.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>Disables gradients in this flow of execution until the returned scope is disposed: functions
    /// record nothing and keep nothing for a backward pass (no LayerNorm statistics, no attention
    /// log-sum-exp), for evaluation and inference. Their outputs belong to the current
    /// <see cref="TensorScope"/>, as those of <see cref="Ops"/> do.</summary>
    /// <returns>A scope that restores the previous state when disposed. Ownership: the caller disposes it
    /// (typically with <c>using</c>).</returns>
    public static NoGradScope NoGrad() => new();

    /// <summary>Runs the backward pass from a one-element <paramref name="loss"/>, seeding its gradient with 1:
    /// every variable that requires a gradient and leads to the loss receives d(loss)/d(variable) in
    /// <see cref="Variable.Grad"/> (added to what a parameter or leaf already holds, see
    /// <see cref="Variable.ZeroGrad"/>).</summary>
    /// <param name="loss">A one-element variable recorded on this tape (or a leaf).</param>
    /// <exception cref="ArgumentNullException"><paramref name="loss"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="loss"/> has more than one element, does not require a
    /// gradient, or was recorded by another tape.</exception>
    /// <exception cref="InvalidOperationException">Backward already ran on this tape.</exception>
    /// <exception cref="ObjectDisposedException">The tape was disposed.</exception>
    public void Backward(Variable loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        if (loss.Value.ElementCount != 1)
        {
            throw new ArgumentException(
                $"Backward(loss) needs a one-element loss; this variable has shape [{string.Join(", ", loss.Shape)}]. " +
                "Reduce it first, or pass its gradient with Backward(output, outputGradient).", nameof(loss));
        }
        Validate(loss, nameof(loss));
        var seed = NewTensor(loss.Context, loss.Shape);
        seed.Fill(1);
        _backwardStarted = true;
        Run(loss, seed);
    }

    /// <summary>Runs the backward pass from <paramref name="output"/> with the given output gradient (the
    /// vector of a vector-Jacobian product, as PyTorch's <c>output.backward(gradient)</c>).</summary>
    /// <param name="output">A variable recorded on this tape (or a leaf).</param>
    /// <param name="outputGradient">d(loss)/d(output), of <paramref name="output"/>'s shape, f32; it is copied.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="output"/> does not require a gradient or was recorded
    /// by another tape.</exception>
    /// <exception cref="InvalidOperationException">Backward already ran on this tape.</exception>
    /// <exception cref="NativeEngineException"><paramref name="outputGradient"/>'s shape or dtype differs (the tape
    /// stays usable).</exception>
    public void Backward(Variable output, Tensor outputGradient)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(outputGradient);
        Validate(output, nameof(output));
        var seed = NewTensor(output.Context, output.Shape);
        try
        {
            seed.CopyFrom(outputGradient);
        }
        catch
        {
            seed.Dispose();
            throw;
        }
        _backwardStarted = true;
        Run(output, seed);
    }

    /// <summary>Disposes every tensor of <see cref="Scope"/> (activations, kept inputs, temporary gradients)
    /// and stops being current. Parameters and their gradients are untouched. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _nodes.Clear();
        _scope.Dispose();
        if (ReferenceEquals(s_current.Value, this))
        {
            s_current.Value = null;
        }
    }

    /// <summary>Sets whether gradients are disabled; returns the previous setting.</summary>
    internal static bool SetNoGrad(bool disabled)
    {
        var previous = s_noGrad.Value;
        s_noGrad.Value = disabled;
        return previous;
    }

    // Checks everything before the tape is marked as having run, so that a refused call leaves it usable.
    private void Validate(Variable output, string argument)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_backwardStarted)
        {
            throw new InvalidOperationException("Backward has already run on this tape; a tape runs one backward pass. Record the next step on a new tape.");
        }
        if (!output.RequiresGrad)
        {
            throw new ArgumentException(
                "The variable does not require a gradient: nothing recorded on this tape leads to it from a variable that " +
                "requires one (was it computed under NoGrad, or before the tape was created?).", argument);
        }
        if (output.Producer is { } producer && !ReferenceEquals(producer.Tape, this))
        {
            throw new ArgumentException("The variable was recorded by another tape.", argument);
        }
    }

    private void Run(Variable output, Tensor seed)
    {
        if (!AddGradient(output, seed, transferable: true))
        {
            seed.Dispose();
        }
        for (var i = _nodes.Count - 1; i >= 0; i--)
        {
            var node = _nodes[i];
            if (!node.HasGradient)
            {
                continue;
            }
            node.Backward();
            node.ReleaseOutputGradients();
        }
    }

    // ------------------------------------------------------------------------------------------
    // Recording (for Fn)
    // ------------------------------------------------------------------------------------------

    /// <summary>The tape a function with inputs that (do not) require gradients records on, or null.</summary>
    /// <exception cref="InvalidOperationException">The current tape already ran its backward pass.</exception>
    internal static GradientTape? ForRecording(bool anyInputRequiresGrad)
    {
        if (!anyInputRequiresGrad || s_noGrad.Value)
        {
            return null;
        }
        var tape = Current;
        if (tape is { _backwardStarted: true })
        {
            throw new InvalidOperationException(
                "The current GradientTape has already run Backward. Record the next computation on a new tape, " +
                "or run it under GradientTape.NoGrad().");
        }
        return tape;
    }

    /// <summary>Records a function call with one or two outputs and its backward function.</summary>
    internal void Record(Action backward, Variable output, Variable? second = null)
    {
        var node = new Node(this, backward, output, second);
        output.Producer = node;
        if (second is not null)
        {
            second.Producer = node;
        }
        _nodes.Add(node);
    }

    /// <summary>A new zero-filled tensor owned by the tape's scope.</summary>
    internal Tensor NewTensor(Context context, IReadOnlyList<long> shape, Dtype dtype = Dtype.F32)
    {
        Span<long> dims = stackalloc long[shape.Count];
        for (var i = 0; i < dims.Length; i++)
        {
            dims[i] = shape[i];
        }
        return Tensor.Create(context, dtype, dims).MoveTo(_scope);
    }

    /// <summary>A new handle on <paramref name="tensor"/>'s memory (same layout) owned by the tape's scope: it
    /// keeps an input that is not a variable (ids, targets, key lengths) alive until the backward pass, even if
    /// the caller disposes its own handle.</summary>
    internal Tensor Keep(Tensor tensor)
    {
        Span<long> shape = stackalloc long[tensor.Rank];
        Span<long> strides = stackalloc long[tensor.Rank];
        for (var i = 0; i < shape.Length; i++)
        {
            shape[i] = tensor.Shape[i];
            strides[i] = tensor.Strides[i];
        }
        return tensor.View(tensor.Offset, shape, strides).MoveTo(_scope);
    }

    /// <summary>A new zero-filled f32 tensor that belongs to no scope.</summary>
    internal static Tensor CreateDetached(Context context, IReadOnlyList<long> shape)
    {
        Span<long> dims = stackalloc long[shape.Count];
        for (var i = 0; i < dims.Length; i++)
        {
            dims[i] = shape[i];
        }
        return CreateDetached(context, dims);
    }

    /// <summary>A new zero-filled f32 tensor that belongs to no scope.</summary>
    internal static Tensor CreateDetached(Context context, ReadOnlySpan<long> shape) =>
        Tensor.Create(context, Dtype.F32, shape).MoveTo(null);

    // ------------------------------------------------------------------------------------------
    // Gradients (for the backward functions of Fn)
    // ------------------------------------------------------------------------------------------

    /// <summary>The gradient that reached <paramref name="output"/>, or null if none did.</summary>
    internal static Tensor? OutputGradient(Variable output) => output.GradHasValue ? output.GradTensor : null;

    /// <summary>Takes the gradient of an output of the running function away from it, so that the backward
    /// function may overwrite it in place and hand it on to an input (see <see cref="AddGradient"/>). Null when
    /// the gradient must stay (retained, persistent) or none reached the output. The caller owns the result
    /// (it stays in the tape's scope) and disposes it if it does not hand it on.</summary>
    internal Tensor? TakeGradient(Variable output)
    {
        if (!output.GradHasValue || output.RetainGrad || output.HasPersistentGradient || !ReferenceEquals(output.Producer!.Tape, this))
        {
            return null;
        }
        var gradient = output.GradTensor;
        output.GradTensor = null;
        output.GradHasValue = false;
        return gradient;
    }

    /// <summary>The gradient buffer of <paramref name="variable"/> for a kernel with an accumulate flag (or GEMM
    /// beta): <paramref name="accumulate"/> tells whether to add into it (it already holds a contribution) or
    /// to overwrite it. The variable counts as holding its gradient from now on.</summary>
    internal Tensor GradientForKernel(Variable variable, out bool accumulate)
    {
        var gradient = variable.GradTensor ??= variable.AllocateGradient(this);
        accumulate = variable.GradHasValue;
        variable.GradHasValue = true;
        return gradient;
    }

    /// <summary>The gradient buffers of two variables that one kernel call writes under one accumulate flag
    /// (gamma and beta, weight and bias); null for a variable that is null or needs no gradient. When one holds
    /// a contribution and the other not yet, the other is zeroed first and both accumulate.</summary>
    internal void GradientsForKernel(Variable? first, Variable? second, out Tensor? firstGradient, out Tensor? secondGradient,
        out bool accumulate)
    {
        first = first is { RequiresGrad: true } ? first : null;
        second = second is { RequiresGrad: true } ? second : null;
        if (first is not null && second is not null && first.GradHasValue != second.GradHasValue)
        {
            var fresh = first.GradHasValue ? second : first;
            var zeroed = fresh.GradTensor ??= fresh.AllocateGradient(this);
            zeroed.Fill(0);
            fresh.GradHasValue = true;
        }
        accumulate = false;
        firstGradient = first is null ? null : GradientForKernel(first, out accumulate);
        var secondAccumulate = false;
        secondGradient = second is null ? null : GradientForKernel(second, out secondAccumulate);
        accumulate |= secondAccumulate;
    }

    /// <summary>Where a kernel that overwrites its output writes a gradient contribution of
    /// <paramref name="variable"/>: the variable's own buffer when it holds nothing yet, a temporary otherwise
    /// (added in by <see cref="Commit"/>). For a variable that is null or needs no gradient: a scratch tensor
    /// of <paramref name="shape"/>, discarded by <see cref="Commit"/>.</summary>
    internal GradientSlot BeginOverwrite(Variable? variable, Context context, IReadOnlyList<long> shape)
    {
        if (variable is { RequiresGrad: true } && !variable.GradHasValue)
        {
            var gradient = variable.GradTensor ??= variable.AllocateGradient(this);
            variable.GradHasValue = true;
            return new GradientSlot(variable, gradient, direct: true);
        }
        return new GradientSlot(variable is { RequiresGrad: true } ? variable : null, NewTensor(context, shape), direct: false);
    }

    /// <summary>Completes a <see cref="BeginOverwrite"/>: adds a temporary into the variable's gradient, and
    /// disposes it.</summary>
    internal static void Commit(in GradientSlot slot)
    {
        if (slot.Direct)
        {
            return;
        }
        if (slot.Variable is { } variable)
        {
            var gradient = variable.GradTensor!;
            Ops.Add(gradient.Context, gradient, slot.Target, gradient);
        }
        slot.Target.Dispose();
    }

    /// <summary>Adds <paramref name="contribution"/> (of the variable's shape, contiguous) to the gradient of
    /// <paramref name="variable"/>. The first contribution is copied, or with <paramref name="transferable"/>
    /// adopted without a copy when the variable is an intermediate output of this tape that has no gradient
    /// buffer yet: the variable then owns the tensor, and the caller must neither write it nor hand it on
    /// again. Later contributions are added in place.</summary>
    /// <returns>Whether the variable adopted <paramref name="contribution"/>.</returns>
    internal bool AddGradient(Variable? variable, Tensor contribution, bool transferable)
    {
        if (variable is not { RequiresGrad: true })
        {
            return false;
        }
        if (variable.GradHasValue)
        {
            var gradient = variable.GradTensor!;
            Ops.Add(gradient.Context, gradient, contribution, gradient);
            return false;
        }
        if (transferable && variable.GradTensor is null && !variable.HasPersistentGradient &&
            ReferenceEquals(variable.Producer!.Tape, this))
        {
            variable.GradTensor = contribution;
            variable.GradHasValue = true;
            return true;
        }
        var destination = variable.GradTensor ??= variable.AllocateGradient(this);
        destination.CopyFrom(contribution);
        variable.GradHasValue = true;
        return false;
    }

    /// <summary>Adds <paramref name="owned"/>, a gradient the caller owns, to the gradients of two variables
    /// (either may be null or the same): handed on to one of them without a copy where possible, disposed
    /// otherwise.</summary>
    internal void Distribute(Tensor owned, Variable? first, Variable? second)
    {
        var adopted = AddGradient(first, owned, transferable: true);
        adopted |= AddGradient(second, owned, transferable: !adopted);
        if (!adopted)
        {
            owned.Dispose();
        }
    }

    /// <summary>The backward pass of an element-wise function <c>y = f(x)</c> whose kernel computes
    /// <c>dx = kernel(dy)</c> and may run in place: reuses <paramref name="output"/>'s gradient buffer for
    /// <paramref name="input"/>'s gradient where possible.</summary>
    /// <param name="output">y.</param>
    /// <param name="input">x.</param>
    /// <param name="kernel">Writes dx (second argument) from dy (first argument); the two may be one tensor.</param>
    internal void ElementwiseBackward(Variable output, Variable input, Action<Tensor, Tensor> kernel)
    {
        if (!input.RequiresGrad)
        {
            return;
        }
        var owned = TakeGradient(output);
        if (owned is not null)
        {
            kernel(owned, owned);
            if (!AddGradient(input, owned, transferable: true))
            {
                owned.Dispose();
            }
            return;
        }
        var slot = BeginOverwrite(input, input.Context, input.Shape);
        kernel(OutputGradient(output)!, slot.Target);
        Commit(slot);
    }

    /// <summary>The buffer of a gradient that a function writes only in part (a slice): zeroed first when the
    /// variable holds nothing yet.</summary>
    internal Tensor GradientForPartialWrite(Variable variable)
    {
        var gradient = variable.GradTensor ??= variable.AllocateGradient(this);
        if (!variable.GradHasValue)
        {
            gradient.Fill(0);
            variable.GradHasValue = true;
        }
        return gradient;
    }
}

/// <summary>Where a kernel writes one gradient contribution (see <see cref="GradientTape.BeginOverwrite"/>).</summary>
internal readonly struct GradientSlot(Variable? variable, Tensor target, bool direct)
{
    /// <summary>The variable that receives the contribution, or null for a discarded scratch output.</summary>
    public Variable? Variable { get; } = variable;

    /// <summary>The tensor the kernel writes.</summary>
    public Tensor Target { get; } = target;

    /// <summary>Whether <see cref="Target"/> is the variable's own gradient buffer.</summary>
    public bool Direct { get; } = direct;
}

/// <summary>One recorded function call: its outputs and its backward function.</summary>
internal sealed class Node(GradientTape tape, Action backward, Variable output, Variable? second)
{
    /// <summary>The tape that recorded the call.</summary>
    public GradientTape Tape { get; } = tape;

    /// <summary>Whether a gradient reached an output.</summary>
    public bool HasGradient => output.GradHasValue || (second?.GradHasValue ?? false);

    /// <summary>Propagates the output gradients to the inputs.</summary>
    public void Backward() => backward();

    /// <summary>Releases the outputs' gradients once propagated (unless retained).</summary>
    public void ReleaseOutputGradients()
    {
        Release(output);
        if (second is not null)
        {
            Release(second);
        }
    }

    private static void Release(Variable variable)
    {
        if (variable.RetainGrad || variable.GradTensor is null)
        {
            return;
        }
        variable.GradTensor.Dispose();
        variable.GradTensor = null;
        variable.GradHasValue = false;
    }
}

/// <summary>Disables gradient recording while it is not disposed (see <see cref="GradientTape.NoGrad"/>).</summary>
public sealed class NoGradScope : IDisposable
{
    private readonly bool _previous;
    private bool _disposed;

    internal NoGradScope()
    {
        _previous = GradientTape.SetNoGrad(true);
    }

    /// <summary>Restores the state of gradients before this scope. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            GradientTape.SetNoGrad(_previous);
        }
    }
}
