namespace NativeEngine.Autograd;

// Softmax cross-entropy losses over an output projection: full (chunked) and sampled.
public static partial class Fn
{
    /// <summary>Mean softmax cross-entropy of the logits <c>hidden W^T + b</c> over the non-ignored rows, fused
    /// with the output projection (<c>ne_cross_entropy_forward</c> / <c>_backward</c>): the [N, V] logits are
    /// computed in chunks of classes and never exist at once.</summary>
    /// <param name="hidden">The hidden states, [..., D] (the leading dimensions are the N rows).</param>
    /// <param name="weight">The output embedding, [V, D] (a tied token embedding works as is).</param>
    /// <param name="bias">The output bias, [V]; or null.</param>
    /// <param name="targets">The target classes, i32 with one per row (shape [N] or <paramref name="hidden"/>'s
    /// leading shape); negative ignores the row.</param>
    /// <param name="targetCount">The number of non-ignored targets, the mean's denominator. Null counts them
    /// by copying <paramref name="targets"/> to the host (a device round trip); the data loader usually knows it.
    /// Zero gives a loss of 0.</param>
    /// <param name="chunkSize">Classes per chunk; 0 picks the library's default.</param>
    /// <returns>The mean loss, a scalar (rank 0). Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="targetCount"/> is negative.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Variable CrossEntropyLoss(Variable hidden, Variable weight, Variable? bias, Tensor targets,
        long? targetCount = null, long chunkSize = 0)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(targets);
        RequireRank(hidden, 1, nameof(hidden));
        var scale = MeanScale(targets, targetCount);
        var tape = GradientTape.ForRecording(hidden.RequiresGrad || weight.RequiresGrad || bias is { RequiresGrad: true });
        var context = hidden.Context;
        var hm = TensorViews.Matrix(hidden.Value);
        var rows = hm.Shape[0];
        var flatTargets = TensorViews.Flat(targets);
        var lse = tape?.NewTensor(context, [rows]);
        var loss = NewOutput(context, tape, []);
        try
        {
            using var losses = Tensor.Create(context, Dtype.F32, rows);
            Ops.CrossEntropyForward(context, hm, weight.Value, bias?.Value, flatTargets, losses, lse, chunkSize);
            Mean(context, losses, loss, scale);
        }
        catch
        {
            hm.Dispose();
            flatTargets.Dispose();
            loss.Dispose();
            lse?.Dispose();
            throw;
        }
        var result = Result(loss, tape);
        if (tape is null)
        {
            hm.Dispose();
            flatTargets.Dispose();
            return result;
        }
        hm.MoveTo(tape.Scope);
        flatTargets.MoveTo(tape.Scope);
        tape.Record(() =>
        {
            using var dloss = RowGradient(tape, context, GradientTape.OutputGradient(result)!, rows, scale);
            var slot = tape.BeginOverwrite(hidden, context, hidden.Shape);
            using var dhidden = TensorViews.Matrix(slot.Target);
            tape.GradientsForKernel(weight, bias, out var dweight, out var dbias, out var accumulate);
            Ops.CrossEntropyBackward(context, hm, weight.Value, bias?.Value, flatTargets, lse!, dloss, dhidden, dweight, dbias,
                accumulate, chunkSize);
            GradientTape.Commit(slot);
        }, result);
        return result;
    }

    /// <summary>Mean sampled softmax loss over the non-ignored rows (<c>ne_sample_log_uniform</c> +
    /// <c>ne_sampled_softmax_forward</c> / <c>_backward</c>): each row scores its target against
    /// <paramref name="sampleCount"/> classes drawn from the log-uniform (Zipfian) distribution, with the logits
    /// corrected by the log expected counts. Classes must be ordered from most to least frequent. The samples
    /// depend only on <paramref name="seed"/>: pass a new seed per step.</summary>
    /// <param name="hidden">The hidden states, [..., D].</param>
    /// <param name="weight">The output embedding, [V, D].</param>
    /// <param name="bias">The output bias, [V]; or null.</param>
    /// <param name="targets">The target classes, i32, one per row; negative ignores the row.</param>
    /// <param name="sampleCount">S, the number of sampled classes (at most V when <paramref name="unique"/>).</param>
    /// <param name="seed">The seed of the samples.</param>
    /// <param name="targetCount">The number of non-ignored targets; null counts them on the host (see
    /// <see cref="CrossEntropyLoss"/>).</param>
    /// <param name="unique">Draw S distinct classes (true) or S independent draws.</param>
    /// <param name="removeAccidentalHits">Leave a sample equal to a row's target out of that row's softmax.</param>
    /// <returns>The mean loss, a scalar (rank 0). Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="weight"/> is not 2-D.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sampleCount"/> is not positive, or
    /// <paramref name="targetCount"/> is negative.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Variable SampledSoftmaxLoss(Variable hidden, Variable weight, Variable? bias, Tensor targets, int sampleCount,
        ulong seed, long? targetCount = null, bool unique = true, bool removeAccidentalHits = true)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(targets);
        RequireRank(hidden, 1, nameof(hidden));
        if (weight.Shape.Count != 2)
        {
            throw new ArgumentException($"An output embedding is [V, D]; got shape [{string.Join(", ", weight.Shape)}].", nameof(weight));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(sampleCount, 1);
        var scale = MeanScale(targets, targetCount);
        var tape = GradientTape.ForRecording(hidden.RequiresGrad || weight.RequiresGrad || bias is { RequiresGrad: true });
        var context = hidden.Context;
        var hm = TensorViews.Matrix(hidden.Value);
        var rows = hm.Shape[0];
        var flatTargets = TensorViews.Flat(targets);
        var samples = NewOutput(context, tape, [sampleCount], Dtype.I32);
        var probs = tape?.NewTensor(context, [rows, sampleCount + 1L]);
        var loss = NewOutput(context, tape, []);
        try
        {
            using var sampleCounts = Tensor.Create(context, Dtype.F32, sampleCount);
            using var targetCounts = Tensor.Create(context, Dtype.F32, rows);
            using var losses = Tensor.Create(context, Dtype.F32, rows);
            Ops.SampleLogUniform(context, weight.Shape[0], seed, unique, samples, sampleCounts, flatTargets, targetCounts);
            Ops.SampledSoftmaxForward(context, hm, weight.Value, bias?.Value, flatTargets, samples, sampleCounts, targetCounts,
                losses, probs, subtractLogExpectedCount: true, removeAccidentalHits);
            Mean(context, losses, loss, scale);
        }
        catch
        {
            hm.Dispose();
            flatTargets.Dispose();
            samples.Dispose();
            probs?.Dispose();
            loss.Dispose();
            throw;
        }
        var result = Result(loss, tape);
        if (tape is null)
        {
            hm.Dispose();
            flatTargets.Dispose();
            samples.Dispose();
            return result;
        }
        hm.MoveTo(tape.Scope);
        flatTargets.MoveTo(tape.Scope);
        tape.Record(() =>
        {
            using var dloss = RowGradient(tape, context, GradientTape.OutputGradient(result)!, rows, scale);
            var slot = tape.BeginOverwrite(hidden, context, hidden.Shape);
            using var dhidden = TensorViews.Matrix(slot.Target);
            tape.GradientsForKernel(weight, bias, out var dweight, out var dbias, out var accumulate);
            Ops.SampledSoftmaxBackward(context, hm, weight.Value, flatTargets, samples, probs!, dloss, dhidden, dweight, dbias,
                accumulate);
            GradientTape.Commit(slot);
        }, result);
        return result;
    }

    /// <summary>The number of non-negative targets, counted on the host (one device-to-host copy).</summary>
    /// <param name="targets">The targets, i32 of any shape.</param>
    /// <returns>How many are not ignored.</returns>
    /// <exception cref="ArgumentException"><paramref name="targets"/> is not i32.</exception>
    public static long CountTargets(Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        long count = 0;
        foreach (var target in targets.ToArray<int>())
        {
            if (target >= 0)
            {
                count++;
            }
        }
        return count;
    }

    private static float MeanScale(Tensor targets, long? targetCount)
    {
        var count = targetCount ?? CountTargets(targets);
        ArgumentOutOfRangeException.ThrowIfNegative(count, nameof(targetCount));
        return count == 0 ? 0f : (float)(1.0 / count);
    }

    // loss = scale * sum(losses), on the device.
    private static void Mean(Context context, Tensor losses, Tensor loss, float scale)
    {
        Ops.ReduceSum(context, losses, loss);
        Ops.Axpby(context, scale, loss, 0f, loss);
    }

    // dloss[n] = scale * g for every row, from the scalar loss gradient g, without a round trip to the host.
    private static Tensor RowGradient(GradientTape tape, Context context, Tensor lossGradient, long rows, float scale)
    {
        var dloss = tape.NewTensor(context, [rows]);
        using (var column = dloss.View(dloss.Offset, [rows, 1]))
        using (var g = lossGradient.View(lossGradient.Offset, [1]))
        {
            Ops.Add(context, column, g, column);
        }
        Ops.Axpby(context, scale, dloss, 0f, dloss);
        return dloss;
    }
}
