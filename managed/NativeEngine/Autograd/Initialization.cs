using System.Text;

namespace NativeEngine.Autograd;

/// <summary>
/// Seeded, deterministic parameter initialization: values are drawn on the host and uploaded, so that one
/// seed gives the same bits on every backend.
/// </summary>
/// <remarks>
/// <para>The generator, for reproduction elsewhere: each parameter draws from its own stream, so that adding,
/// removing or reordering parameters never changes the others. The stream of the parameter named
/// <c>name</c> (its hierarchical name, such as <c>blocks.0.mlp.fc.weight</c>) is SplitMix64 with the initial
/// state <c>seed ^ FNV-1a-64(UTF-8 bytes of name)</c>; each output is
/// <c>state += 0x9E3779B97F4A7C15; z = state; z = (z ^ (z &gt;&gt; 30)) * 0xBF58476D1CE4E5B9;
/// z = (z ^ (z &gt;&gt; 27)) * 0x94D049BB133111EB; z ^ (z &gt;&gt; 31)</c>.
/// A uniform variate is <c>u = ((output &gt;&gt; 11) + 1) * 2^-53</c>, in (0, 1]. Normal variates come in
/// pairs by Box–Muller from two consecutive uniforms u1, u2: <c>r = sqrt(-2 ln u1)</c>, elements 2i and
/// 2i + 1 (row-major) are <c>std * r * cos(2 pi u2)</c> and <c>std * r * sin(2 pi u2)</c>, computed in double
/// and rounded to f32. Zeros and ones are plain fills.</para>
/// <para>The transcendental functions are the runtime's; bits are identical across runs on one platform and
/// agree to the last f32 bit almost everywhere across platforms.</para>
/// </remarks>
public static class Initialization
{
    /// <summary>Initializes every parameter as its <see cref="Parameter.Init"/> says, from
    /// <paramref name="seed"/> and its name. Gradients are left as they are.</summary>
    /// <param name="namedParameters">The parameters with their hierarchical names (such as
    /// <see cref="Modules.Module.NamedParameters"/>).</param>
    /// <param name="seed">The seed.</param>
    /// <exception cref="ArgumentNullException"><paramref name="namedParameters"/> is null.</exception>
    public static void Initialize(IEnumerable<KeyValuePair<string, Parameter>> namedParameters, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(namedParameters);
        foreach (var (name, parameter) in namedParameters)
        {
            Initialize(parameter, name, seed);
        }
    }

    /// <summary>Initializes one parameter as its <see cref="Parameter.Init"/> says, from the stream of
    /// <paramref name="name"/> under <paramref name="seed"/>.</summary>
    /// <param name="parameter">The parameter.</param>
    /// <param name="name">The name that selects the stream (its hierarchical name).</param>
    /// <param name="seed">The seed.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public static void Initialize(Parameter parameter, string name, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        ArgumentNullException.ThrowIfNull(name);
        switch (parameter.Init.Kind)
        {
            case ParameterInitKind.Zeros:
                parameter.Value.Fill(0);
                break;
            case ParameterInitKind.Ones:
                parameter.Value.Fill(1);
                break;
            default:
                var values = GC.AllocateUninitializedArray<float>(checked((int)parameter.ElementCount));
                FillNormal(values, parameter.Init.Std, StreamSeed(seed, name));
                parameter.Value.CopyFrom<float>(values);
                break;
        }
    }

    /// <summary>The initial SplitMix64 state of the stream of <paramref name="name"/>:
    /// <c>seed ^ FNV-1a-64(UTF-8 bytes of name)</c>.</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="name">The name.</param>
    /// <returns>The state.</returns>
    public static ulong StreamSeed(ulong seed, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(name))
        {
            hash = (hash ^ b) * 1099511628211UL;
        }
        return seed ^ hash;
    }

    /// <summary>Fills <paramref name="destination"/> with normal variates of mean 0 and standard deviation
    /// <paramref name="std"/> from the SplitMix64 stream starting at <paramref name="state"/> (see the remarks
    /// of <see cref="Initialization"/>).</summary>
    /// <param name="destination">The values to fill.</param>
    /// <param name="std">The standard deviation.</param>
    /// <param name="state">The initial state of the stream.</param>
    public static void FillNormal(Span<float> destination, float std, ulong state)
    {
        for (var i = 0; i < destination.Length; i += 2)
        {
            var u1 = Uniform(ref state);
            var u2 = Uniform(ref state);
            var r = Math.Sqrt(-2.0 * Math.Log(u1));
            var angle = 2.0 * Math.PI * u2;
            destination[i] = (float)(std * r * Math.Cos(angle));
            if (i + 1 < destination.Length)
            {
                destination[i + 1] = (float)(std * r * Math.Sin(angle));
            }
        }
    }

    /// <summary>The next SplitMix64 output of <paramref name="state"/>.</summary>
    /// <param name="state">The state, advanced.</param>
    /// <returns>A 64-bit output.</returns>
    public static ulong SplitMix64(ref ulong state)
    {
        state += 0x9E3779B97F4A7C15UL;
        var z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Mixes two values into one well-spread seed (one SplitMix64 output of their combination),
    /// for deriving per-call seeds such as dropout masks.</summary>
    /// <param name="seed">A seed.</param>
    /// <param name="value">A value to mix in (a counter, a hash).</param>
    /// <returns>The mixed seed.</returns>
    public static ulong Mix(ulong seed, ulong value)
    {
        var state = seed ^ (value * 0xD1B54A32D192ED03UL);
        return SplitMix64(ref state);
    }

    private static double Uniform(ref ulong state) => ((SplitMix64(ref state) >> 11) + 1) * (1.0 / 9007199254740992.0);
}
