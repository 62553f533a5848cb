using NativeEngine.Autograd;
using NativeEngine.Modules;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Autograd;

/// <summary>Module parameters for gradient checks: every parameter random and of order one in effect, so that
/// no gradient is trivially zero or one (unlike a fresh initialization's unit LayerNorm scales and zero
/// biases).</summary>
internal static class ModuleFixtures
{
    /// <summary>Weights [out, in] uniform with the spread 1.5 / sqrt(in) (activations stay of order one),
    /// LayerNorm scales 1 ± 0.3 and biases and shifts ± 0.2.</summary>
    public static void Randomize(Module module, int seed)
    {
        var random = new Random(seed);
        foreach (var (name, parameter) in module.NamedParameters())
        {
            var shape = parameter.Shape;
            var count = checked((int)parameter.ElementCount);
            var values = shape.Count == 2
                ? TestData.Floats(random, count, 1.5f / MathF.Sqrt(shape[1]))
                : name.EndsWith(".weight", StringComparison.Ordinal)
                    ? TestData.Floats(random, count, 0.3f, center: 1f)
                    : TestData.Floats(random, count, 0.2f);
            parameter.Value.CopyFrom<float>(values);
        }
    }

    /// <summary>Every parameter of <paramref name="module"/> with its name, as inputs of a gradient check.</summary>
    public static List<(string, Variable)> Parameters(Module module, string prefix) =>
        module.NamedParameters().Select(entry => (prefix + entry.Key, (Variable)entry.Value)).ToList();
}
