namespace NativeEngine;

/// <summary>
/// An ambient scope that owns the tensors created while it is current and disposes them when it is
/// disposed, unless they were detached (<see cref="Detach"/>, <see cref="Tensor.MoveTo"/>).
/// </summary>
/// <example>
/// <code>
/// using var outer = new TensorScope();
/// Tensor result;
/// using (var inner = new TensorScope())
/// {
///     var x = Tensor.FromArray(context, data, 2, 4);          // owned by inner
///     var y = Ops.LayerNorm(x, gamma, beta);                   // owned by inner
///     result = y.MoveTo(outer);                                // now owned by outer
/// }                                                            // x disposed here
/// </code>
/// </example>
/// <remarks>
/// <para>Creating a scope makes it <see cref="Current"/>; disposing it makes its
/// <see cref="Parent"/> current again. Scopes nest. Every tensor factory (<see cref="Tensor.Create"/>,
/// <see cref="Tensor.FromArray{T}"/>, <see cref="Tensor.View"/>, <see cref="Tensor.Clone"/>, the
/// allocating methods of <see cref="Ops"/>) registers the new tensor with the current scope, if any.
/// Disposing a tensor yourself removes it from its scope; disposing a scope never disposes a
/// <see cref="Context"/>.</para>
/// <para>Threads and async: the current scope is held in an <see cref="AsyncLocal{T}"/>, so it
/// belongs to the logical flow of execution that created it: it is current on that thread, in
/// the continuations of its awaits, and in tasks and threads started from that flow afterwards
/// (they capture the execution context), but not in flows that started before it, nor in the
/// caller of an async method that created it (that method's changes do not flow back out).
/// Registration is thread-safe, so tensors created on several threads may land in one scope, but
/// disposing a scope is not synchronized with the use of its tensors: dispose it only once the
/// work that uses them has finished. Dispose scopes in reverse order of creation (as
/// <c>using</c> does); a scope disposed out of order stops being current and its tensors are
/// disposed all the same.</para>
/// </remarks>
public sealed class TensorScope : IDisposable
{
    /// <summary>Guards every scope's tensor set and every tensor's owner: one lock, so that moving
    /// a tensor between scopes is atomic. Held only for set operations, never during native calls.</summary>
    internal static readonly Lock MembershipLock = new();

    private static readonly AsyncLocal<TensorScope?> s_current = new();

    private readonly HashSet<Tensor> _tensors = new(ReferenceEqualityComparer.Instance);
    private bool _disposed;

    /// <summary>Creates a scope and makes it <see cref="Current"/> in this flow of execution.</summary>
    /// <remarks>Ownership: the caller owns the scope and must dispose it (typically with <c>using</c>).</remarks>
    public TensorScope()
    {
        Parent = Current;
        s_current.Value = this;
    }

    /// <summary>The innermost scope that is current in this flow of execution and not disposed, or
    /// <see langword="null"/>.</summary>
    public static TensorScope? Current
    {
        get
        {
            lock (MembershipLock)
            {
                return CurrentLocked;
            }
        }
    }

    /// <summary>As <see cref="Current"/>, with <see cref="MembershipLock"/> held.</summary>
    internal static TensorScope? CurrentLocked
    {
        get
        {
            var scope = s_current.Value;
            while (scope is not null && scope._disposed)
            {
                scope = scope.Parent;
            }
            return scope;
        }
    }

    /// <summary>The scope that was current when this one was created, or <see langword="null"/>.</summary>
    public TensorScope? Parent { get; }

    /// <summary>Whether the scope has been disposed.</summary>
    public bool IsDisposed
    {
        get
        {
            lock (MembershipLock)
            {
                return _disposed;
            }
        }
    }

    /// <summary>The number of tensors the scope owns now.</summary>
    public int Count
    {
        get
        {
            lock (MembershipLock)
            {
                return _tensors.Count;
            }
        }
    }

    /// <summary>Whether the scope owns <paramref name="tensor"/>.</summary>
    /// <param name="tensor">The tensor.</param>
    /// <returns><see langword="true"/> if disposing the scope would dispose the tensor.</returns>
    public bool Contains(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        lock (MembershipLock)
        {
            return _tensors.Contains(tensor);
        }
    }

    /// <summary>Removes <paramref name="tensor"/> from this scope without disposing it: the caller
    /// then owns it and must dispose it. Same as <c>tensor.MoveTo(null)</c> for a tensor of this scope.</summary>
    /// <param name="tensor">A tensor this scope owns.</param>
    /// <returns><paramref name="tensor"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="tensor"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The scope does not own <paramref name="tensor"/>.</exception>
    public Tensor Detach(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        lock (MembershipLock)
        {
            if (!_tensors.Contains(tensor))
            {
                throw new InvalidOperationException("The tensor does not belong to this scope.");
            }
            RemoveLocked(tensor);
            tensor.OwnerScope = null;
        }
        return tensor;
    }

    /// <summary>Disposes every tensor the scope still owns and makes <see cref="Parent"/> current
    /// again (if this scope is current). Calling it again does nothing.</summary>
    public void Dispose()
    {
        Tensor[] owned;
        lock (MembershipLock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            owned = [.. _tensors];
            _tensors.Clear();
            foreach (var tensor in owned)
            {
                tensor.OwnerScope = null;
            }
        }
        if (ReferenceEquals(s_current.Value, this))
        {
            s_current.Value = Parent;
        }
        foreach (var tensor in owned)
        {
            tensor.Dispose();
        }
    }

    /// <summary>Whether the scope has been disposed; <see cref="MembershipLock"/> must be held.</summary>
    internal bool IsDisposedLocked => _disposed;

    /// <summary>Adds a tensor; <see cref="MembershipLock"/> must be held.</summary>
    internal void AddLocked(Tensor tensor)
    {
        _tensors.Add(tensor);
        tensor.OwnerScope = this;
    }

    /// <summary>Removes a tensor; <see cref="MembershipLock"/> must be held.</summary>
    internal void RemoveLocked(Tensor tensor) => _tensors.Remove(tensor);
}
