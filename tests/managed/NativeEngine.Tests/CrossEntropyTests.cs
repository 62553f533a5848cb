using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>The chunked cross-entropy, the log-uniform sampler and the sampled softmax through C#.</summary>
public sealed class CrossEntropyTests
{
    private const int N = 6, D = 5, V = 11;

    [Theory]
    [InlineData(SimdLevel.Scalar)]
    [InlineData(SimdLevel.Auto)]
    public void ChunkedLossAndGradientsMatchTheMaterializedSoftmax(SimdLevel simd)
    {
        using var context = TestData.CreateContext(simd);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(N, D, V));
        var hidden = TestData.Floats(random, N * D);
        var weight = TestData.Floats(random, V * D);
        var bias = TestData.Floats(random, V);
        int[] targets = [3, 0, -1, 10, 7, 3];  // row 2 is ignored
        var (th, tw, tb, tt) = (Tensor.FromArray<float>(context, hidden, N, D), Tensor.FromArray<float>(context, weight, V, D),
            Tensor.FromArray<float>(context, bias), Tensor.FromArray<int>(context, targets));

        var loss = Tensor.Create(context, Dtype.F32, N);
        var lse = Tensor.Create(context, Dtype.F32, N);
        Ops.CrossEntropyForward(context, th, tw, tb, tt, loss, lse, chunkSize: 4);
        var dloss = Enumerable.Repeat(0.2f, N).ToArray();
        var (dh, dw, db) = (Tensor.Create(context, Dtype.F32, N, D), Tensor.Create(context, Dtype.F32, V, D), Tensor.Create(context, Dtype.F32, V));
        Ops.CrossEntropyBackward(context, th, tw, tb, tt, lse, Tensor.FromArray<float>(context, dloss), dh, dw, db, chunkSize: 4);

        var probabilities = Softmax(hidden, weight, bias, out var expectedLse);
        var expectedLoss = new double[N];
        var dz = new double[N * V];
        for (var n = 0; n < N; n++)
        {
            if (targets[n] < 0)
            {
                continue;
            }
            expectedLoss[n] = -Math.Log(probabilities[n * V + targets[n]]);
            for (var c = 0; c < V; c++)
            {
                dz[n * V + c] = dloss[n] * (probabilities[n * V + c] - (c == targets[n] ? 1 : 0));
            }
        }
        TestData.AssertClose(loss.ToArray<float>(), expectedLoss, 1e-5, "loss");
        TestData.AssertClose(lse.ToArray<float>(), expectedLse, 1e-5, "lse");
        TestData.AssertClose(dh.ToArray<float>(), Product(dz, weight, N, V, D), 1e-5, "dhidden");
        TestData.AssertClose(dw.ToArray<float>(), TransposedProduct(dz, hidden, N, V, D), 1e-5, "dweight");
        TestData.AssertClose(db.ToArray<float>(), Enumerable.Range(0, V).Select(c => Enumerable.Range(0, N).Sum(n => dz[n * V + c])).ToArray(), 1e-5, "dbias");
    }

    [Fact]
    public void TheSamplerIsReproducibleAndUniqueSamplingGivesDistinctClasses()
    {
        using var context = TestData.CreateContext(SimdLevel.Auto);
        using var scope = new TensorScope();
        int[] Draw(ulong seed, bool unique, out float[] counts)
        {
            var samples = Tensor.Create(context, Dtype.I32, 8);
            var expected = Tensor.Create(context, Dtype.F32, 8);
            Ops.SampleLogUniform(context, V, seed, unique, samples, expected);
            counts = expected.ToArray<float>();
            return samples.ToArray<int>();
        }

        var first = Draw(42, unique: false, out var counts);
        Assert.Equal(first, Draw(42, unique: false, out _));
        Assert.NotEqual(first, Draw(43, unique: false, out _));
        for (var s = 0; s < first.Length; s++)
        {
            var probability = Math.Log((first[s] + 2.0) / (first[s] + 1.0)) / Math.Log(V + 1.0);
            Assert.Equal(8 * probability, counts[s], 1e-5);
        }
        var unique = Draw(7, unique: true, out _);
        Assert.Equal(unique.Length, unique.Distinct().Count());
        Assert.All(unique, c => Assert.InRange(c, 0, V - 1));
    }

    [Fact]
    public void SampledSoftmaxOverEveryClassWithoutCorrectionIsTheFullSoftmax()
    {
        using var context = TestData.CreateContext(SimdLevel.Auto);
        using var scope = new TensorScope();
        var random = new Random(TestData.Seed(N, D, V, 1));
        var hidden = Tensor.FromArray<float>(context, TestData.Floats(random, N * D), N, D);
        var weight = Tensor.FromArray<float>(context, TestData.Floats(random, V * D), V, D);
        var bias = Tensor.FromArray<float>(context, TestData.Floats(random, V));
        var targets = Tensor.FromArray<int>(context, [3, 0, -1, 10, 7, 3]);
        var samples = Tensor.Create(context, Dtype.I32, V);
        var counts = Tensor.Create(context, Dtype.F32, V);
        Ops.SampleLogUniform(context, V, seed: 5, unique: true, samples, counts);

        var sampled = Tensor.Create(context, Dtype.F32, N);
        Ops.SampledSoftmaxForward(context, hidden, weight, bias, targets, samples, null, null, sampled,
            subtractLogExpectedCount: false, removeAccidentalHits: true);

        TestData.AssertClose(sampled.ToArray<float>(), Ops.CrossEntropy(hidden, weight, bias, targets).ToArray<float>()
            .Select(x => (double)x).ToArray(), 1e-5, "loss");
    }

    private static double[] Softmax(float[] hidden, float[] weight, float[] bias, out double[] lse)
    {
        var probabilities = new double[N * V];
        lse = new double[N];
        for (var n = 0; n < N; n++)
        {
            var logits = new double[V];
            for (var c = 0; c < V; c++)
            {
                logits[c] = bias[c] + Enumerable.Range(0, D).Sum(d => (double)hidden[n * D + d] * weight[c * D + d]);
            }
            var max = logits.Max();
            var total = logits.Sum(z => Math.Exp(z - max));
            lse[n] = max + Math.Log(total);
            for (var c = 0; c < V; c++)
            {
                probabilities[n * V + c] = Math.Exp(logits[c] - lse[n]);
            }
        }
        return probabilities;
    }

    // [N,V] x [V,D] -> [N,D]
    private static double[] Product(double[] dz, float[] weight, int n, int v, int d) =>
        Enumerable.Range(0, n * d).Select(i => Enumerable.Range(0, v).Sum(c => dz[i / d * v + c] * weight[c * d + i % d])).ToArray();

    // [N,V]^T x [N,D] -> [V,D]
    private static double[] TransposedProduct(double[] dz, float[] hidden, int n, int v, int d) =>
        Enumerable.Range(0, v * d).Select(i => Enumerable.Range(0, n).Sum(r => dz[r * v + i / d] * hidden[r * d + i % d])).ToArray();
}
