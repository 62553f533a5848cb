using NativeEngine.Autograd;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests.Autograd;

/// <summary>
/// Finite-difference checks of the gradients that <see cref="GradientTape"/> computes.
/// </summary>
/// <remarks>
/// <para>The objective is <c>L = sum(R * f(inputs))</c> with a fixed random projection R (seeded; R = 1 for a
/// one-element output such as a loss). The tape runs <c>Backward(f, R)</c> twice (see below); then each input's
/// value is perturbed in place, <c>f</c> is evaluated without recording (the engine's f32 forward pass), and L
/// is summed in double on the host. The five-point central difference
/// <c>(8 (L(x + h d) - L(x - h d)) - (L(x + 2h d) - L(x - 2h d))) / 12h</c> (truncation error O(h^4)) is compared
/// with <c>&lt;grad, d&gt;</c> along random sign directions (unit vectors with entries ±1/sqrt(n)) and along
/// sampled coordinate axes.</para>
/// <para>Tolerance: <c>|numeric - analytic| &lt;= tolerance * (|analytic| + rms(grad)) + tolerance * 1e-3</c>.
/// rms(grad) is the typical size of a directional derivative along a unit direction; it keeps near-zero
/// derivatives from demanding a relative accuracy that f32 rounding cannot give, while a missing or wrong term
/// of a gradient changes the result by a multiple of it and fails. The last term only matters for gradients
/// that are zero everywhere.</para>
/// <para>Stale buffers: the first backward pass allocates the inputs' gradients, which are then filled with
/// NaN and marked zero (<see cref="Variable.ZeroGrad"/>); the checked second pass must overwrite them without
/// reading them, as the first pass of each training step does.</para>
/// </remarks>
internal static class GradientCheck
{
    /// <summary>Checks the gradients of the objective with respect to every variable of <paramref name="inputs"/>
    /// (leaves with f32 values: variables, views or parameters).</summary>
    /// <param name="forward">Computes f from the inputs' current values; called under a tape twice and
    /// unrecorded for every perturbation. It must be deterministic (fixed dropout and sampling seeds).</param>
    /// <param name="inputs">The variables to differentiate with respect to, with names for messages.</param>
    /// <param name="seed">Seeds R, the directions and the coordinates.</param>
    /// <param name="step">h, the perturbation of each element.</param>
    /// <param name="tolerance">The relative tolerance (see the remarks).</param>
    /// <param name="directions">Random unit sign directions per input.</param>
    /// <param name="coordinates">Sampled coordinates per input.</param>
    /// <returns>The analytic gradients, in the order of <paramref name="inputs"/>, and R.</returns>
    public static GradientCheckResult Check(Func<Variable> forward, IReadOnlyList<(string Name, Variable Variable)> inputs, int seed,
        double step = 1e-2, double tolerance = 2e-3, int directions = 3, int coordinates = 6)
    {
        var random = new Random(seed);
        var baseValues = inputs.Select(input => input.Variable.Value.ToArray<float>()).ToArray();
        double[] projection = [];

        float[][] RunTape()
        {
            var gradients = new float[inputs.Count][];
            using var tape = new GradientTape();
            var output = forward();
            var count = checked((int)output.Value.ElementCount);
            if (count == 1)
            {
                projection = [1.0];
                tape.Backward(output);
            }
            else
            {
                if (projection.Length != count)
                {
                    projection = TestData.Floats(random, count).Select(value => (double)value).ToArray();
                }
                using var r = Tensor.FromArray<float>(output.Context, projection.Select(value => (float)value).ToArray(),
                    [.. output.Shape]);
                tape.Backward(output, r);
            }
            for (var i = 0; i < inputs.Count; i++)
            {
                gradients[i] = inputs[i].Variable.Grad?.ToArray<float>() ?? new float[baseValues[i].Length];
            }
            return gradients;
        }

        // The first pass allocates the inputs' gradient buffers. Filling them with NaN and marking them zero
        // (ZeroGrad) shows that the checked pass overwrites a stale buffer instead of reading it or writing
        // only part of it.
        foreach (var (_, variable) in inputs)
        {
            variable.ZeroGrad();
        }
        RunTape();
        foreach (var (_, variable) in inputs)
        {
            variable.Grad?.Fill(double.NaN);
            variable.ZeroGrad();
        }
        var gradients = RunTape();

        double Objective()
        {
            using var scope = new TensorScope();
            using var noGrad = GradientTape.NoGrad();
            var values = forward().Value.ToArray<float>();
            Assert.Equal(projection.Length, values.Length);
            var sum = 0.0;
            for (var j = 0; j < values.Length; j++)
            {
                sum += projection[j] * values[j];
            }
            return sum;
        }

        var failures = new List<string>();
        for (var i = 0; i < inputs.Count; i++)
        {
            var (name, variable) = inputs[i];
            var x = baseValues[i];
            var g = gradients[i];
            var rms = Math.Sqrt(g.Sum(value => (double)value * value) / g.Length);

            // The five-point central difference (8 (L(x + h d) - L(x - h d)) - (L(x + 2h d) - L(x - 2h d))) / 12h,
            // exact for polynomials up to degree 4, and the same combination of <grad, x'> over the perturbed values
            // as rounded to f32, so that the rounding of the steps cancels out.
            (double Numeric, double Analytic) Derivatives(double[] direction)
            {
                var numeric = 0.0;
                var analytic = 0.0;
                var moved = new float[x.Length];
                foreach (var (multiple, weight) in new[] { (1, 8.0), (-1, -8.0), (2, -1.0), (-2, 1.0) })
                {
                    for (var k = 0; k < x.Length; k++)
                    {
                        moved[k] = (float)(x[k] + multiple * step * direction[k]);
                        analytic += weight * g[k] * ((double)moved[k] - x[k]);
                    }
                    variable.Value.CopyFrom<float>(moved);
                    numeric += weight * Objective();
                }
                variable.Value.CopyFrom<float>(x);
                return (numeric / (12 * step), analytic / (12 * step));
            }

            void Compare(string what, double[] direction)
            {
                var (numeric, analytic) = Derivatives(direction);
                var error = Math.Abs(numeric - analytic);
                var bound = tolerance * (Math.Abs(analytic) + rms) + tolerance * 1e-3;
                if (!(error <= bound))
                {
                    failures.Add($"{name} {what}: analytic {analytic:G6}, finite difference {numeric:G6} (error {error:E2} > {bound:E2})");
                }
            }

            for (var d = 0; d < directions; d++)
            {
                var direction = new double[x.Length];
                var component = 1.0 / Math.Sqrt(x.Length);
                for (var k = 0; k < direction.Length; k++)
                {
                    direction[k] = random.Next(2) == 0 ? -component : component;
                }
                Compare($"along sign direction {d}", direction);
            }
            foreach (var k in SampleIndices(random, x.Length, coordinates))
            {
                var axis = new double[x.Length];
                axis[k] = 1.0;
                Compare($"[{k}]", axis);
            }
        }
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
        return new GradientCheckResult(gradients, projection);
    }

    /// <summary>A leaf variable that requires a gradient, holding <paramref name="values"/> (owned by the
    /// current <see cref="TensorScope"/>).</summary>
    public static Variable Leaf(Context context, float[] values, params long[] shape) =>
        new(Tensor.FromArray<float>(context, values, shape), requiresGrad: true);

    /// <summary>A leaf variable of uniform values in [-spread, spread].</summary>
    public static Variable RandomLeaf(Context context, Random random, float spread, params long[] shape) =>
        Leaf(context, TestData.Floats(random, checked((int)TestData.Product(shape)), spread), shape);

    private static IEnumerable<int> SampleIndices(Random random, int count, int samples)
    {
        if (samples >= count)
        {
            return Enumerable.Range(0, count);
        }
        var picked = new SortedSet<int>();
        while (picked.Count < samples)
        {
            picked.Add(random.Next(count));
        }
        return picked;
    }
}

/// <summary>What <see cref="GradientCheck.Check"/> computed.</summary>
/// <param name="Gradients">The analytic gradient of each input, row-major.</param>
/// <param name="Projection">R, row-major over the output.</param>
internal sealed record GradientCheckResult(float[][] Gradients, double[] Projection);
