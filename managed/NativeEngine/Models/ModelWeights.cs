using NativeEngine.Checkpoints;
using NativeEngine.Modules;

namespace NativeEngine.Models;

/// <summary>
/// A module's weights as a map from hierarchical names (<see cref="Module.NamedParameters"/>, such as
/// <c>blocks.0.attention.qkv.weight</c>) to tensors, for checkpoints: to a <see cref="SafeTensorsWriter"/>, and
/// back from a map or a <see cref="SafeTensorsFile"/>, all or nothing.
/// </summary>
/// <remarks>A shared (tied) parameter appears once, under its first name.</remarks>
public static class ModelWeights
{
    /// <summary>The module's parameters by name: their values themselves, not copies.</summary>
    /// <param name="module">The module.</param>
    /// <returns>A new map. Ownership: the tensors remain the module's; do not dispose them.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="module"/> is null.</exception>
    public static Dictionary<string, Tensor> ToMap(Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var map = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, parameter) in module.NamedParameters())
        {
            map.Add(name, parameter.Value);
        }
        return map;
    }

    /// <summary>Adds every parameter to <paramref name="writer"/> by reference (read during its save).</summary>
    /// <param name="writer">The writer.</param>
    /// <param name="module">The module; its parameters must stay alive and unchanged until the writer has saved.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">A name is already in the writer.</exception>
    public static void AddTo(SafeTensorsWriter writer, Module module)
    {
        ArgumentNullException.ThrowIfNull(writer);
        foreach (var (name, tensor) in ToMap(module))
        {
            writer.Add(name, tensor);
        }
    }

    /// <summary>Copies <paramref name="tensors"/> into the module's parameters, after checking that the names are
    /// exactly the module's and every tensor is f32 of its parameter's shape: nothing is copied otherwise.</summary>
    /// <param name="module">The module.</param>
    /// <param name="tensors">One tensor per parameter name (any context).</param>
    /// <exception cref="ArgumentNullException">An argument or one of the tensors is null.</exception>
    /// <exception cref="ArgumentException">A parameter has no tensor, a tensor has no parameter, or a dtype or shape
    /// differs; the message names the first problem and counts them. Nothing was copied.</exception>
    public static void Load(Module module, IReadOnlyDictionary<string, Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(tensors);
        var parameters = module.NamedParameters().ToList();
        var problems = new List<string>();
        foreach (var (name, parameter) in parameters)
        {
            if (!tensors.TryGetValue(name, out var tensor))
            {
                problems.Add($"missing tensor '{name}' (expected F32 {Format(parameter.Shape)})");
                continue;
            }
            ArgumentNullException.ThrowIfNull(tensor, $"tensors[\"{name}\"]");
            if (tensor.Dtype != Dtype.F32)
            {
                problems.Add($"tensor '{name}' is {tensor.Dtype}; expected F32");
            }
            else if (!tensor.Shape.SequenceEqual(parameter.Shape))
            {
                problems.Add($"tensor '{name}' has shape {Format(tensor.Shape)}; expected {Format(parameter.Shape)}");
            }
        }
        var known = parameters.Select(entry => entry.Key).ToHashSet(StringComparer.Ordinal);
        problems.AddRange(tensors.Keys.Where(name => !known.Contains(name)).Order(StringComparer.Ordinal)
            .Select(name => $"unexpected tensor '{name}' (the model has no such parameter)"));
        if (problems.Count > 0)
        {
            throw new ArgumentException(
                $"The weights do not match the model: {problems[0]}{(problems.Count > 1 ? $" (and {problems.Count - 1} more problems)" : "")}; nothing was loaded.",
                nameof(tensors));
        }
        foreach (var (name, parameter) in parameters)
        {
            parameter.Value.CopyFrom(tensors[name]);
        }
    }

    /// <summary>Reads the module's parameters from a safetensors file, after checking that it holds exactly the
    /// module's names with F32 tensors of their shapes (<see cref="SafeTensorsFile.ReadInto(IReadOnlyDictionary{string, Tensor}, bool, CancellationToken)"/>).</summary>
    /// <param name="module">The module.</param>
    /// <param name="file">The file.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="CheckpointException">The file does not match the module (a missing, unused or mis-shaped
    /// tensor); nothing was loaded.</exception>
    public static void Load(Module module, SafeTensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        file.ReadInto(ToMap(module));
    }

    internal static string Format(IReadOnlyList<long> shape) => $"[{string.Join(", ", shape)}]";
}
