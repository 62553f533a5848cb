using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>Flash attention through C#: the forward pass against a materialized softmax in double,
/// grouped-query heads, causal masking, key lengths, and a finite-difference check of the backward.</summary>
public sealed class AttentionTests
{
    private const int B = 2, Tq = 5, Tk = 7, H = 4, Hkv = 2, D = 8;

    public static TheoryData<SimdLevel, bool, bool> Cases()
    {
        var data = new TheoryData<SimdLevel, bool, bool>();
        foreach (var simd in new[] { SimdLevel.Scalar, SimdLevel.Auto })
        {
            foreach (var causal in new[] { false, true })
            {
                foreach (var withLengths in new[] { false, true })
                {
                    data.Add(simd, causal, withLengths);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesTheMaterializedSoftmax(SimdLevel simd, bool causal, bool withLengths)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(causal ? 1 : 0, withLengths ? 1 : 0));
        var q = TestData.Floats(random, B * Tq * H * D);
        var k = TestData.Floats(random, B * Tk * Hkv * D);
        var v = TestData.Floats(random, B * Tk * Hkv * D);
        int[]? lengths = withLengths ? [Tk, 3] : null;

        var output = Ops.Attention(
            Tensor.FromArray<float>(context, q, B, Tq, H, D), Tensor.FromArray<float>(context, k, B, Tk, Hkv, D),
            Tensor.FromArray<float>(context, v, B, Tk, Hkv, D), causal,
            keyLengths: lengths is null ? null : Tensor.FromArray<int>(context, lengths));

        TestData.AssertClose(output.ToArray<float>(), Reference(q, k, v, causal, lengths), 1e-5, "output");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BackwardMatchesFiniteDifferences(bool allowAtomics)
    {
        using var context = TestData.CreateContext(SimdLevel.Auto);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(B, Tq, Tk));
        var q = TestData.Floats(random, B * Tq * H * D);
        var k = TestData.Floats(random, B * Tk * Hkv * D);
        var v = TestData.Floats(random, B * Tk * Hkv * D);
        var weights = TestData.Floats(random, B * Tq * H * D);  // loss = sum(output * weights)

        var tq = Tensor.FromArray<float>(context, q, B, Tq, H, D);
        var tk = Tensor.FromArray<float>(context, k, B, Tk, Hkv, D);
        var tv = Tensor.FromArray<float>(context, v, B, Tk, Hkv, D);
        var output = Tensor.Create(context, Dtype.F32, B, Tq, H, D);
        var lse = Tensor.Create(context, Dtype.F32, B, H, Tq);
        Ops.AttentionForward(context, tq, tk, tv, output, lse, causal: true);
        var dq = Tensor.Create(context, Dtype.F32, B, Tq, H, D);
        var dk = Tensor.Create(context, Dtype.F32, B, Tk, Hkv, D);
        var dv = Tensor.Create(context, Dtype.F32, B, Tk, Hkv, D);
        Ops.AttentionBackward(context, tq, tk, tv, output, lse, Tensor.FromArray<float>(context, weights, B, Tq, H, D),
            dq, dk, dv, causal: true, allowAtomics: allowAtomics);

        double Loss(float[] qs, float[] ks, float[] vs)
        {
            var o = Reference(qs, ks, vs, causal: true, lengths: null);
            return o.Select((value, i) => value * weights[i]).Sum();
        }
        const float step = 1e-2f;
        foreach (var (input, gradient, name) in new[] { (q, dq, "dq"), (k, dk, "dk"), (v, dv, "dv") })
        {
            var analytic = gradient.ToArray<float>();
            for (var i = 0; i < input.Length; i += 7)
            {
                var saved = input[i];
                input[i] = saved + step;
                var up = Loss(q, k, v);
                input[i] = saved - step;
                var down = Loss(q, k, v);
                input[i] = saved;
                var numeric = (up - down) / (2 * step);
                Assert.True(Math.Abs(analytic[i] - numeric) <= 1e-3 * Math.Max(1, Math.Abs(numeric)),
                    $"{name}[{i}] = {analytic[i]}, finite difference {numeric}");
            }
        }
    }

    // out[b,i,h,:] = sum_j softmax_j(q.k_j / sqrt(D)) v_j over the visible keys, in double.
    private static double[] Reference(float[] q, float[] k, float[] v, bool causal, int[]? lengths)
    {
        var output = new double[B * Tq * H * D];
        var scale = 1.0 / Math.Sqrt(D);
        for (var b = 0; b < B; b++)
        {
            var length = lengths?[b] ?? Tk;
            for (var h = 0; h < H; h++)
            {
                var kvHead = h / (H / Hkv);
                for (var i = 0; i < Tq; i++)
                {
                    var visible = Enumerable.Range(0, length).Where(j => !causal || j <= i + (length - Tq)).ToArray();
                    if (visible.Length == 0)
                    {
                        continue;
                    }
                    var scores = visible.Select(j =>
                    {
                        var dot = 0.0;
                        for (var d = 0; d < D; d++)
                        {
                            dot += (double)q[((b * Tq + i) * H + h) * D + d] * k[((b * Tk + j) * Hkv + kvHead) * D + d];
                        }
                        return dot * scale;
                    }).ToArray();
                    var max = scores.Max();
                    var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
                    var total = weights.Sum();
                    for (var n = 0; n < visible.Length; n++)
                    {
                        for (var d = 0; d < D; d++)
                        {
                            output[((b * Tq + i) * H + h) * D + d] += weights[n] / total * v[((b * Tk + visible[n]) * Hkv + kvHead) * D + d];
                        }
                    }
                }
            }
        }
        return output;
    }
}
