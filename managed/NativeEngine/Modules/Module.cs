using NativeEngine.Autograd;

namespace NativeEngine.Modules;

/// <summary>
/// Base class of the neural network building blocks: a tree of named child modules and parameters, with a
/// training/evaluation mode.
/// </summary>
/// <remarks>
/// <para>Names are hierarchical, PyTorch style: a parameter <c>weight</c> of the module registered as
/// <c>qkv</c> inside <c>attention</c> inside the child <c>0</c> of <c>blocks</c> is
/// <c>blocks.0.attention.qkv.weight</c> (<see cref="NamedParameters"/>).</para>
/// <para>Ownership: a module owns its parameters, its buffers and its child modules, and disposes them all in
/// <see cref="Dispose()"/>. A parameter registered twice (weight tying) is listed and counted once.</para>
/// <para>Each module has its own strongly typed <c>Forward</c> methods; they call the differentiable
/// functions of <see cref="Fn"/>, so they record on the current <see cref="GradientTape"/>. Intermediate
/// tensors of a forward pass that is not recorded are freed when the call returns; only its result is owned
/// by the caller's current <see cref="TensorScope"/> (or by the caller).</para>
/// </remarks>
public abstract class Module : IDisposable
{
    private readonly List<KeyValuePair<string, Parameter>> _parameters = [];
    private readonly List<KeyValuePair<string, Module>> _children = [];
    private readonly List<Tensor> _buffers = [];
    private bool _disposed;

    /// <summary>Creates a module whose parameters live in <paramref name="context"/>.</summary>
    /// <param name="context">The context of the parameters; the module does not own it.</param>
    /// <exception cref="ArgumentNullException"><paramref name="context"/> is null.</exception>
    protected Module(Context context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Context = context;
    }

    /// <summary>The context that holds the module's parameters.</summary>
    public Context Context { get; }

    /// <summary>Whether the module is in training mode (dropout active), as set by <see cref="Train"/> and
    /// <see cref="Eval"/>; true initially.</summary>
    public bool IsTraining { get; private set; } = true;

    /// <summary>Whether the module has been disposed.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>The direct child modules with their names, in registration order.</summary>
    public IReadOnlyList<KeyValuePair<string, Module>> Children => _children;

    /// <summary>The number of scalar parameters (elements of every distinct parameter, shared ones once).</summary>
    public long ParameterCount
    {
        get
        {
            long count = 0;
            foreach (var parameter in Parameters())
            {
                count += parameter.ElementCount;
            }
            return count;
        }
    }

    /// <summary>Every distinct parameter of this module and its descendants with its hierarchical name, depth
    /// first in registration order (a module's own parameters before its children's).</summary>
    /// <returns>The named parameters; a shared parameter appears once, under its first name.</returns>
    public IEnumerable<KeyValuePair<string, Parameter>> NamedParameters()
    {
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var entry in NamedParametersCore(""))
        {
            if (seen.Add(entry.Value))
            {
                yield return entry;
            }
        }
    }

    /// <summary>Every distinct parameter, in the order of <see cref="NamedParameters"/>.</summary>
    /// <returns>The parameters.</returns>
    public IEnumerable<Parameter> Parameters()
    {
        foreach (var entry in NamedParameters())
        {
            yield return entry.Value;
        }
    }

    /// <summary>This module's descendants with their hierarchical names (such as <c>blocks.0.attention</c>),
    /// depth first.</summary>
    /// <returns>The named modules.</returns>
    public IEnumerable<KeyValuePair<string, Module>> NamedModules()
    {
        foreach (var (name, child) in _children)
        {
            yield return new(name, child);
            foreach (var (childName, descendant) in child.NamedModules())
            {
                yield return new($"{name}.{childName}", descendant);
            }
        }
    }

    /// <summary>Sets training mode (true) or evaluation mode (false) on this module and its descendants.</summary>
    /// <param name="training">The mode.</param>
    public void Train(bool training = true)
    {
        IsTraining = training;
        foreach (var (_, child) in _children)
        {
            child.Train(training);
        }
    }

    /// <summary>Sets evaluation mode (dropout off) on this module and its descendants: <c>Train(false)</c>.</summary>
    public void Eval() => Train(false);

    /// <summary>Marks every parameter's gradient as zero without writing or reallocating it (see
    /// <see cref="Variable.ZeroGrad"/>).</summary>
    public void ZeroGrad()
    {
        foreach (var parameter in Parameters())
        {
            parameter.ZeroGrad();
        }
    }

    /// <summary>Sets every parameter's <see cref="Variable.Name"/> to its hierarchical name.</summary>
    public void NameParameters()
    {
        foreach (var (name, parameter) in NamedParameters())
        {
            parameter.Name = name;
        }
    }

    /// <summary>Registers a parameter under <paramref name="name"/>. Ownership: the module takes it over.</summary>
    /// <param name="name">A name unique among this module's parameters and children, without dots.</param>
    /// <param name="parameter">The parameter.</param>
    /// <returns><paramref name="parameter"/>.</returns>
    /// <exception cref="ArgumentException">The name is empty, contains a dot, or is taken.</exception>
    protected Parameter RegisterParameter(string name, Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        CheckName(name);
        _parameters.Add(new(name, parameter));
        parameter.Name ??= name;
        return parameter;
    }

    /// <summary>Registers a child module under <paramref name="name"/>. Ownership: the module takes it over.</summary>
    /// <typeparam name="TModule">The child's type.</typeparam>
    /// <param name="name">A name unique among this module's parameters and children, without dots.</param>
    /// <param name="module">The child.</param>
    /// <returns><paramref name="module"/>.</returns>
    /// <exception cref="ArgumentException">The name is empty, contains a dot, or is taken.</exception>
    protected TModule RegisterModule<TModule>(string name, TModule module) where TModule : Module
    {
        ArgumentNullException.ThrowIfNull(module);
        CheckName(name);
        _children.Add(new(name, module));
        return module;
    }

    /// <summary>Registers a tensor that is not trained (a constant table): the module takes it over, detaches it
    /// from its <see cref="TensorScope"/>, and disposes it with itself.</summary>
    /// <param name="tensor">The tensor.</param>
    /// <returns><paramref name="tensor"/>.</returns>
    protected Tensor RegisterBuffer(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        _buffers.Add(tensor.MoveTo(null));
        return tensor;
    }

    /// <summary>Disposes the parameters, buffers and child modules. Calling it again does nothing.</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the module owns.</summary>
    /// <param name="disposing">True when called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (_disposed || !disposing)
        {
            return;
        }
        _disposed = true;
        foreach (var (_, child) in _children)
        {
            child.Dispose();
        }
        foreach (var (_, parameter) in _parameters)
        {
            parameter.Dispose();
        }
        foreach (var buffer in _buffers)
        {
            buffer.Dispose();
        }
    }

    private IEnumerable<KeyValuePair<string, Parameter>> NamedParametersCore(string prefix)
    {
        foreach (var (name, parameter) in _parameters)
        {
            yield return new(prefix + name, parameter);
        }
        foreach (var (name, child) in _children)
        {
            foreach (var entry in child.NamedParametersCore($"{prefix}{name}."))
            {
                yield return entry;
            }
        }
    }

    private void CheckName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Contains('.'))
        {
            throw new ArgumentException($"Name '{name}' contains a dot; dots separate the levels of hierarchical names.", nameof(name));
        }
        if (_parameters.Exists(entry => entry.Key == name) || _children.Exists(entry => entry.Key == name))
        {
            throw new ArgumentException($"Name '{name}' is already registered in this module.", nameof(name));
        }
    }
}

/// <summary>An ordered list of child modules named <c>0</c>, <c>1</c>, ... (such as the blocks of a
/// transformer).</summary>
/// <typeparam name="TModule">The type of the children.</typeparam>
public sealed class ModuleList<TModule> : Module, IReadOnlyList<TModule> where TModule : Module
{
    private readonly List<TModule> _items = [];

    /// <summary>Creates a list of the given modules. Ownership: the list takes them over.</summary>
    /// <param name="context">The context of the modules.</param>
    /// <param name="modules">The modules, in order.</param>
    public ModuleList(Context context, IEnumerable<TModule> modules) : base(context)
    {
        ArgumentNullException.ThrowIfNull(modules);
        foreach (var module in modules)
        {
            _items.Add(RegisterModule(_items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), module));
        }
    }

    /// <summary>The module at <paramref name="index"/>.</summary>
    /// <param name="index">The index.</param>
    public TModule this[int index] => _items[index];

    /// <summary>The number of modules.</summary>
    public int Count => _items.Count;

    /// <summary>Enumerates the modules in order.</summary>
    /// <returns>The enumerator.</returns>
    public IEnumerator<TModule> GetEnumerator() => _items.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Frees the intermediate tensors of a forward pass that is not recorded: everything created while it
/// is current, except the results passed to <see cref="Keep(Variable)"/>, which move to the scope that was current
/// before. Recorded tensors live in the tape's scope and are untouched.</summary>
internal sealed class ForwardScope : IDisposable
{
    private readonly TensorScope? _outer = TensorScope.Current;
    private readonly TensorScope _inner = new();

    /// <summary>Moves <paramref name="variable"/>'s value to the outer scope if this scope owns it.</summary>
    public Variable Keep(Variable variable)
    {
        if (ReferenceEquals(variable.Value.Scope, _inner))
        {
            variable.Value.MoveTo(_outer);
        }
        return variable;
    }

    /// <summary>Moves <paramref name="tensor"/> to the outer scope if this scope owns it.</summary>
    public Tensor Keep(Tensor tensor)
    {
        if (ReferenceEquals(tensor.Scope, _inner))
        {
            tensor.MoveTo(_outer);
        }
        return tensor;
    }

    /// <summary>Disposes what is left.</summary>
    public void Dispose() => _inner.Dispose();
}
