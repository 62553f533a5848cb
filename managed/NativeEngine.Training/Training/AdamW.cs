using System.Globalization;
using NativeEngine.Autograd;
using NativeEngine.Checkpoints;
using NativeEngine.Modules;

namespace NativeEngine.Training;

/// <summary>Hyperparameters of <see cref="AdamW"/> other than the learning rate, which each
/// <see cref="AdamW.Step"/> takes.</summary>
public sealed record AdamWOptions
{
    /// <summary>Decay rate of the first moment, in [0, 1). Default: 0.9.</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>Decay rate of the second moment, in [0, 1). Default: 0.999.</summary>
    public float Beta2 { get; init; } = 0.999f;

    /// <summary>Added to the root of the second moment, &gt; 0. Default: 1e-8.</summary>
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>Decoupled weight decay of the parameters that decay (see <see cref="AdamW.Decays"/>), &gt;= 0.
    /// Default: 0.01.</summary>
    public float WeightDecay { get; init; } = 0.01f;

    /// <summary>&gt; 0 clips the global gradient norm (of every parameter's gradient together) to this value;
    /// 0 does not clip. Default: 0.</summary>
    public float MaxGradNorm { get; init; }

    /// <summary>Throws unless every option is in range.</summary>
    /// <exception cref="ArgumentException">An option is out of range; the message names it and its range.</exception>
    public void Validate()
    {
        CheckBeta(Beta1, nameof(Beta1));
        CheckBeta(Beta2, nameof(Beta2));
        if (!(float.IsFinite(Epsilon) && Epsilon > 0))
        {
            throw Invalid($"Epsilon is {Epsilon}; it must be finite and > 0.");
        }
        if (!(float.IsFinite(WeightDecay) && WeightDecay >= 0))
        {
            throw Invalid($"WeightDecay is {WeightDecay}; it must be finite and >= 0.");
        }
        if (!(float.IsFinite(MaxGradNorm) && MaxGradNorm >= 0))
        {
            throw Invalid($"MaxGradNorm is {MaxGradNorm}; it must be finite and >= 0 (0 does not clip).");
        }
    }

    private static void CheckBeta(float beta, string name)
    {
        if (!(beta >= 0 && beta < 1))
        {
            throw Invalid($"{name} is {beta}; it must lie in [0, 1).");
        }
    }

    private static ArgumentException Invalid(FormattableString message) =>
        new(message.ToString(CultureInfo.InvariantCulture), "options");
}

/// <summary>A group of parameters that share a weight decay.</summary>
/// <param name="Name"><see cref="AdamW.DecayGroupName"/> or <see cref="AdamW.NoDecayGroupName"/>.</param>
/// <param name="WeightDecay">The decoupled weight decay of the group.</param>
/// <param name="ParameterNames">The hierarchical names of its parameters, in the module's order.</param>
public sealed record AdamWParameterGroup(string Name, float WeightDecay, IReadOnlyList<string> ParameterNames);

/// <summary>
/// The AdamW optimizer (Loshchilov and Hutter; as PyTorch's <c>torch.optim.AdamW</c>) over the trainable
/// parameters of a <see cref="Module"/>, one fused native update per parameter (<see cref="Ops.AdamWStep"/>).
/// </summary>
/// <remarks>
/// <para>Parameter groups: matrices and embeddings (rank &gt;= 2) decay by <see cref="AdamWOptions.WeightDecay"/>;
/// vectors (rank &lt;= 1: LayerNorm gains and biases, every bias) do not (<see cref="Decays"/>). Parameters
/// whose <see cref="Variable.RequiresGrad"/> is false when the optimizer is created are left out.</para>
/// <para>Gradient clipping and norms stay on the device: the squares of every gradient are summed into one
/// tensor (<see cref="Ops.ReduceSum"/> with squares and accumulate), which the update kernels read; nothing
/// comes back to the host unless <see cref="ReadGradientNorm"/> is called. The norm is computed when
/// <see cref="AdamWOptions.MaxGradNorm"/> &gt; 0 or when a step asks for it.</para>
/// <para>Gradient accumulation: run several backward passes without zeroing the gradients, then call
/// <see cref="Step"/> with <c>gradScale = 1 / accumulationSteps</c>; the scale applies to the clipping norm too.</para>
/// <para>A parameter without a gradient (no backward pass reached it) counts as having a zero gradient: its
/// moments decay and, in the decay group, it decays, so that every parameter shares the one step counter.</para>
/// <para>Ownership: the optimizer owns its moment tensors (<c>m</c>, <c>v</c>, zero before the first step) and
/// its norm accumulator, and frees them in <see cref="Dispose"/>; the parameters belong to the module. Not
/// thread-safe: use it on the thread of its context.</para>
/// </remarks>
public sealed class AdamW : IDisposable
{
    /// <summary>The name of the group that decays.</summary>
    public const string DecayGroupName = "decay";

    /// <summary>The name of the group that does not decay.</summary>
    public const string NoDecayGroupName = "no_decay";

    /// <summary>The suffix of a parameter's first moment in <see cref="StateTensors"/>.</summary>
    public const string FirstMomentSuffix = ".m";

    /// <summary>The suffix of a parameter's second moment in <see cref="StateTensors"/>.</summary>
    public const string SecondMomentSuffix = ".v";

    /// <summary>The metadata key of the step counter in a saved state.</summary>
    public const string StepMetadataKey = "adamw.step";

    private readonly Slot[] _slots;
    private readonly Tensor _gradNormSquared;
    private float _normScale;
    private bool _normComputed;
    private bool _disposed;

    /// <summary>Creates the optimizer with zero moments and a step counter of 0.</summary>
    /// <param name="module">The module whose trainable parameters it updates; it keeps no ownership of them.</param>
    /// <param name="options">The hyperparameters; <see langword="null"/> for the defaults.</param>
    /// <remarks>Ownership: the caller owns the optimizer and must dispose it (its moment tensors).</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="module"/> is null.</exception>
    /// <exception cref="ArgumentException">An option is out of range, or the module has no trainable parameter.</exception>
    public AdamW(Module module, AdamWOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        options ??= new AdamWOptions();
        options.Validate();
        Options = options;
        Context = module.Context;
        var trainable = module.NamedParameters().Where(entry => entry.Value.RequiresGrad).ToArray();
        if (trainable.Length == 0)
        {
            throw new ArgumentException("The module has no parameter that requires a gradient; there is nothing to optimize.", nameof(module));
        }
        var slots = new List<Slot>(trainable.Length);
        try
        {
            _gradNormSquared = Tensor.Create(Context, Dtype.F32, 1).MoveTo(null);
            foreach (var (name, parameter) in trainable)
            {
                var m = Tensor.Create(Context, Dtype.F32, [.. parameter.Shape]).MoveTo(null);
                Tensor v;
                try
                {
                    v = Tensor.Create(Context, Dtype.F32, [.. parameter.Shape]).MoveTo(null);
                }
                catch
                {
                    m.Dispose();
                    throw;
                }
                slots.Add(new Slot(name, parameter, m, v, Decays(parameter) ? options.WeightDecay : 0f));
            }
        }
        catch
        {
            foreach (var slot in slots)
            {
                slot.Dispose();
            }
            _gradNormSquared?.Dispose();
            throw;
        }
        _slots = [.. slots];
        Groups =
        [
            new AdamWParameterGroup(DecayGroupName, options.WeightDecay, [.. _slots.Where(s => Decays(s.Parameter)).Select(s => s.Name)]),
            new AdamWParameterGroup(NoDecayGroupName, 0f, [.. _slots.Where(s => !Decays(s.Parameter)).Select(s => s.Name)]),
        ];
    }

    /// <summary>The hyperparameters.</summary>
    public AdamWOptions Options { get; }

    /// <summary>The context of the parameters and moments.</summary>
    public Context Context { get; }

    /// <summary>The two parameter groups: <see cref="DecayGroupName"/> then <see cref="NoDecayGroupName"/>.</summary>
    public IReadOnlyList<AdamWParameterGroup> Groups { get; }

    /// <summary>The number of steps taken (restored by <see cref="LoadState"/>); the next step is
    /// <c>StepCount + 1</c>, whose bias corrections use that 1-based index.</summary>
    public long StepCount { get; private set; }

    /// <summary>Whether <paramref name="parameter"/> belongs to the decay group: matrices and embeddings
    /// (rank &gt;= 2) do; vectors and scalars (norm gains, biases) do not.</summary>
    /// <param name="parameter">The parameter.</param>
    /// <returns>True for rank &gt;= 2.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="parameter"/> is null.</exception>
    public static bool Decays(Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        return parameter.Shape.Count >= 2;
    }

    /// <summary>Updates every parameter from its gradient (<see cref="Variable.Grad"/>) and increments
    /// <see cref="StepCount"/>. Gradients are left as they are (zero them before the next backward pass, such as
    /// with <see cref="Module.ZeroGrad"/>).</summary>
    /// <param name="learningRate">The step size of this step, finite and &gt;= 0.</param>
    /// <param name="gradScale">Multiplies every gradient before use (1 / accumulation steps); finite and not 0.</param>
    /// <param name="computeGradientNorm">Compute the global gradient norm for <see cref="ReadGradientNorm"/>
    /// even without clipping (one extra pass over the gradients, on the device).</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer, or a parameter, was disposed.</exception>
    /// <exception cref="NativeEngineException">The library refused an update.</exception>
    public void Step(float learningRate, float gradScale = 1f, bool computeGradientNorm = false)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!(float.IsFinite(learningRate) && learningRate >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and >= 0.");
        }
        if (!float.IsFinite(gradScale) || gradScale == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(gradScale), gradScale, "The gradient scale must be finite and not 0.");
        }
        var gradients = new Tensor[_slots.Length];
        for (var i = 0; i < _slots.Length; i++)
        {
            gradients[i] = _slots[i].Gradient();
        }
        var clip = Options.MaxGradNorm > 0;
        _normComputed = clip || computeGradientNorm;
        if (_normComputed)
        {
            for (var i = 0; i < gradients.Length; i++)
            {
                Ops.ReduceSum(Context, gradients[i], _gradNormSquared, squares: true, accumulate: i > 0);
            }
            _normScale = Math.Abs(gradScale);
        }
        var step = StepCount + 1;
        for (var i = 0; i < _slots.Length; i++)
        {
            var slot = _slots[i];
            Ops.AdamWStep(Context, slot.Parameter.Value, gradients[i], slot.M, slot.V, learningRate, step,
                Options.Beta1, Options.Beta2, Options.Epsilon, slot.WeightDecay, gradScale,
                clip ? Options.MaxGradNorm : 0f, clip ? _gradNormSquared : null);
        }
        StepCount = step;
    }

    /// <summary>Copies the global norm of the last step's scaled gradients (<c>|gradScale| * sqrt(sum of squares)</c>,
    /// before clipping) to the host: one device round trip, for logging.</summary>
    /// <returns>The norm.</returns>
    /// <exception cref="InvalidOperationException">The last step did not compute the norm (no clipping and no
    /// request), or no step was taken.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed.</exception>
    public double ReadGradientNorm()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_normComputed)
        {
            throw new InvalidOperationException(
                "The last step computed no gradient norm: enable clipping (MaxGradNorm > 0) or pass computeGradientNorm: true to Step.");
        }
        Span<float> sum = stackalloc float[1];
        _gradNormSquared.CopyTo(sum);
        return _normScale * Math.Sqrt(sum[0]);
    }

    /// <summary>The optimizer's tensors by name: for each parameter <c>name</c>, <c>name.m</c> and <c>name.v</c>
    /// (<see cref="FirstMomentSuffix"/>, <see cref="SecondMomentSuffix"/>). The step counter is
    /// <see cref="StepCount"/>.</summary>
    /// <returns>A new dictionary of the optimizer's own tensors. Ownership: the optimizer keeps them; do not
    /// dispose them, and do not use them after disposing the optimizer.</returns>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed.</exception>
    public IReadOnlyDictionary<string, Tensor> StateTensors()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var slot in _slots)
        {
            state.Add(slot.Name + FirstMomentSuffix, slot.M);
            state.Add(slot.Name + SecondMomentSuffix, slot.V);
        }
        return state;
    }

    /// <summary>Adds the state to a safetensors writer: every tensor of <see cref="StateTensors"/> (by
    /// reference: they are read when the writer saves) and the step counter as the metadata
    /// <see cref="StepMetadataKey"/>.</summary>
    /// <param name="writer">The writer, such as <see cref="CheckpointContents.Optimizer"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="writer"/> is null.</exception>
    /// <exception cref="ArgumentException">The writer already holds one of the names.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed.</exception>
    public void AddStateTo(SafeTensorsWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        foreach (var (name, tensor) in StateTensors())
        {
            writer.Add(name, tensor);
        }
        writer.AddMetadata(StepMetadataKey, StepCount.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Checks that <paramref name="file"/> holds a state this optimizer can load (every moment, of the
    /// right shape and dtype, and a step counter), without changing anything.</summary>
    /// <param name="file">A file written from <see cref="AddStateTo"/>.</param>
    /// <returns>The saved step counter.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="file"/> is null.</exception>
    /// <exception cref="CheckpointException">The file does not match; the message names the file and the problem.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed.</exception>
    public long ValidateState(SafeTensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!file.Metadata.TryGetValue(StepMetadataKey, out var text)
            || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var step))
        {
            throw new CheckpointException(file.Path, $"not an AdamW state: the metadata has no non-negative integer \"{StepMetadataKey}\"");
        }
        var expected = StateTensors();
        var problems = new List<string>();
        foreach (var (name, tensor) in expected)
        {
            if (!file.Contains(name))
            {
                problems.Add($"missing tensor '{name}'");
                continue;
            }
            var info = file.GetInfo(name);
            if (info.Dtype != SafeTensorsDtype.F32 || !info.Shape.SequenceEqual(tensor.Shape))
            {
                problems.Add($"tensor '{name}' is {info.Dtype.ToSpecString()} [{string.Join(", ", info.Shape)}], " +
                    $"the optimizer needs F32 [{string.Join(", ", tensor.Shape)}]");
            }
        }
        var unused = file.Tensors.Count(t => !expected.ContainsKey(t.Name));
        if (unused > 0)
        {
            problems.Add($"{unused} tensor(s) that belong to no parameter of this model, such as '{file.Tensors.First(t => !expected.ContainsKey(t.Name)).Name}'");
        }
        if (problems.Count > 0)
        {
            throw new CheckpointException(file.Path,
                $"the optimizer state does not match this model's parameters: {string.Join("; ", problems.Take(4))}" +
                (problems.Count > 4 ? $"; and {problems.Count - 4} more" : ""));
        }
        return step;
    }

    /// <summary>Loads a state saved by <see cref="AddStateTo"/>: the moments and <see cref="StepCount"/>. The
    /// file is validated first (<see cref="ValidateState"/>), so a mismatch changes nothing.</summary>
    /// <param name="file">The file, such as <see cref="LoadedCheckpoint.Optimizer"/>.</param>
    /// <param name="cancellationToken">Checked between tensors; a cancellation leaves a partly loaded state.</param>
    /// <exception cref="ArgumentNullException"><paramref name="file"/> is null.</exception>
    /// <exception cref="CheckpointException">The file does not match this optimizer.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed.</exception>
    public void LoadState(SafeTensorsFile file, CancellationToken cancellationToken = default)
    {
        var step = ValidateState(file);
        file.ReadInto(StateTensors(), allowUnused: false, cancellationToken);
        StepCount = step;
        _normComputed = false;
    }

    /// <summary>Frees the moments and the norm accumulator. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var slot in _slots)
        {
            slot.Dispose();
        }
        _gradNormSquared.Dispose();
    }

    /// <summary>One parameter with its moments, and the zero gradient it uses while it has none.</summary>
    private sealed class Slot(string name, Parameter parameter, Tensor m, Tensor v, float weightDecay) : IDisposable
    {
        private Tensor? _zeroGradient;

        public string Name { get; } = name;

        public Parameter Parameter { get; } = parameter;

        public Tensor M { get; } = m;

        public Tensor V { get; } = v;

        public float WeightDecay { get; } = weightDecay;

        public Tensor Gradient() => Parameter.Grad ?? (_zeroGradient ??= Tensor.Create(M.Context, Dtype.F32, [.. Parameter.Shape]).MoveTo(null));

        public void Dispose()
        {
            M.Dispose();
            V.Dispose();
            _zeroGradient?.Dispose();
        }
    }
}
