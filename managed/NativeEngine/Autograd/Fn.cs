namespace NativeEngine.Autograd;

/// <summary>
/// Differentiable functions: each runs its native forward kernel and, while a <see cref="GradientTape"/>
/// records, registers the native backward kernels that compute its input gradients.
/// </summary>
/// <remarks>
/// <para>Outputs: a new <see cref="Variable"/> whose value is a new tensor (or a view, for
/// <see cref="Reshape"/> and <see cref="Narrow"/>). Ownership: while recording, the tape's scope owns it;
/// otherwise the current <see cref="TensorScope"/> does, or the caller when there is none (dispose the
/// variable). The output requires a gradient exactly when the call was recorded.</para>
/// <para>Non-differentiable tensor inputs (ids, targets, key lengths) are kept alive by the tape through a
/// view until the backward pass; their contents must not change before it.</para>
/// <para>Errors: shapes and dtypes are validated by the native library
/// (<see cref="NativeEngineException"/>); <see cref="ArgumentException"/> reports what only the managed side
/// can tell, such as a fused projection whose width does not split into the given heads.</para>
/// <para>Everything runs through the native kernels and explicit views: no function reads tensor memory on
/// the host, so they work on every backend.</para>
/// </remarks>
public static partial class Fn
{
    /// <summary>Linear layer <c>y = x W^T + b</c> (<c>ne_gemm</c> with transpose_b, then a broadcast
    /// <c>ne_add</c> of the bias). Backward: <c>dx = dy W</c>, <c>dW += dy^T x</c> (GEMM with transpose_a, beta 1
    /// when accumulating), <c>db += sum_rows(dy)</c>.</summary>
    /// <param name="x">The input, [..., in] f32 (the leading dimensions are rows: a single GEMM).</param>
    /// <param name="weight">The weight, [out, in] (one row per output feature).</param>
    /// <param name="bias">The bias, [out], or null.</param>
    /// <returns>y, [..., out]. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="weight"/> is not 2-D or <paramref name="x"/> is a scalar.</exception>
    /// <exception cref="NativeEngineException">The library refused the shapes.</exception>
    public static Variable Linear(Variable x, Variable weight, Variable? bias = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Shape.Count != 2)
        {
            throw new ArgumentException($"A linear weight is [out, in]; got shape [{string.Join(", ", weight.Shape)}].", nameof(weight));
        }
        var xShape = RequireRank(x, 1, nameof(x));
        var tape = GradientTape.ForRecording(x.RequiresGrad || weight.RequiresGrad || bias is { RequiresGrad: true });
        var context = x.Context;
        var shape = ToArray(xShape);
        shape[^1] = weight.Shape[0];
        var y = NewOutput(context, tape, shape);
        try
        {
            using (var xm = TensorViews.Matrix(x.Value))
            using (var ym = TensorViews.Matrix(y))
            {
                Ops.Gemm(context, xm, weight.Value, ym, transposeB: true);
            }
            if (bias is not null)
            {
                Ops.Add(context, y, bias.Value, y);
            }
        }
        catch
        {
            y.Dispose();
            throw;
        }
        var result = Result(y, tape);
        tape?.Record(() =>
        {
            using var dy = TensorViews.Matrix(GradientTape.OutputGradient(result)!);
            if (x.RequiresGrad)
            {
                var dx = tape.GradientForKernel(x, out var accumulate);
                using var dxm = TensorViews.Matrix(dx);
                Ops.Gemm(context, dy, weight.Value, dxm, beta: accumulate ? 1f : 0f);
            }
            if (weight.RequiresGrad)
            {
                var dw = tape.GradientForKernel(weight, out var accumulate);
                using var xm = TensorViews.Matrix(x.Value);
                Ops.Gemm(context, dy, xm, dw, transposeA: true, beta: accumulate ? 1f : 0f);
            }
            if (bias is { RequiresGrad: true })
            {
                var db = tape.GradientForKernel(bias, out var accumulate);
                Ops.SumRows(context, dy, db, accumulate);
            }
        }, result);
        return result;
    }

    /// <summary>Element-wise sum <c>a + b</c> (<c>ne_add</c>). <paramref name="b"/> has <paramref name="a"/>'s
    /// shape, or the shape of its trailing dimensions and is broadcast over the leading ones (a positional table
    /// [T, C] added to [B, T, C]); its gradient is then summed over them (<c>ne_sum_rows</c>).</summary>
    /// <param name="a">The first operand.</param>
    /// <param name="b">The second operand.</param>
    /// <returns><c>a + b</c>, of <paramref name="a"/>'s shape. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="NativeEngineException">The library refused the shapes.</exception>
    public static Variable Add(Variable a, Variable b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var tape = GradientTape.ForRecording(a.RequiresGrad || b.RequiresGrad);
        var context = a.Context;
        var y = NewOutput(context, tape, a.Shape);
        Run(() => Ops.Add(context, a.Value, b.Value, y), y);
        var result = Result(y, tape);
        var broadcast = b.Shape.Count < a.Shape.Count;
        var bSize = b.Value.ElementCount;
        tape?.Record(() =>
        {
            var owned = tape.TakeGradient(result);
            var dy = owned ?? GradientTape.OutputGradient(result)!;
            var adopted = tape.AddGradient(a, dy, transferable: owned is not null);
            if (b.RequiresGrad)
            {
                if (!broadcast)
                {
                    adopted |= tape.AddGradient(b, dy, transferable: owned is not null && !adopted);
                }
                else
                {
                    var db = tape.GradientForKernel(b, out var accumulate);
                    using var rows = dy.View(dy.Offset, [dy.ElementCount / bSize, bSize]);
                    using var flat = TensorViews.Flat(db);
                    Ops.SumRows(context, rows, flat, accumulate);
                }
            }
            if (owned is not null && !adopted)
            {
                owned.Dispose();
            }
        }, result);
        return result;
    }

    /// <summary>GELU with the tanh approximation of GPT-2 (<c>ne_gelu_forward</c> / <c>ne_gelu_backward</c>).
    /// The backward pass reads the input, which the tape keeps.</summary>
    /// <param name="x">The input.</param>
    /// <returns>GELU(x). Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="NativeEngineException">The library refused the input.</exception>
    public static Variable Gelu(Variable x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var tape = GradientTape.ForRecording(x.RequiresGrad);
        var context = x.Context;
        var y = NewOutput(context, tape, x.Shape);
        Run(() => Ops.GeluForward(context, x.Value, y), y);
        var result = Result(y, tape);
        tape?.Record(() => tape.ElementwiseBackward(result, x,
            (dy, dx) => Ops.GeluBackward(context, x.Value, dy, dx)), result);
        return result;
    }

    /// <summary>Inverted dropout (<c>ne_dropout_forward</c>): each element is zeroed with probability
    /// <paramref name="probability"/> and the others scaled by <c>1 / (1 - probability)</c>. The mask is a hash of
    /// (<paramref name="seed"/>, element index): the backward pass regenerates it, nothing is stored. Pass a new
    /// seed for every call that should draw a new mask.</summary>
    /// <param name="x">The input.</param>
    /// <param name="probability">The drop probability, in [0, 1); 0 returns <paramref name="x"/> itself.</param>
    /// <param name="seed">The seed of the mask.</param>
    /// <returns>The output (or <paramref name="x"/> for probability 0). Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="NativeEngineException">The library refused the probability.</exception>
    public static Variable Dropout(Variable x, float probability, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (probability == 0f)
        {
            return x;
        }
        var tape = GradientTape.ForRecording(x.RequiresGrad);
        var context = x.Context;
        var y = NewOutput(context, tape, x.Shape);
        Run(() => Ops.DropoutForward(context, x.Value, y, probability, seed), y);
        var result = Result(y, tape);
        tape?.Record(() => tape.ElementwiseBackward(result, x,
            (dy, dx) => Ops.DropoutBackward(context, dy, dx, probability, seed)), result);
        return result;
    }

    /// <summary>Embedding lookup (<c>ne_embedding_forward</c>): row <c>ids[...]</c> of <paramref name="table"/>.
    /// Backward: <c>dtable[ids[...]] += dy[...]</c> (<c>ne_embedding_backward</c>).</summary>
    /// <param name="table">The table, [V, C].</param>
    /// <param name="ids">The ids, i32 of any shape, in [0, V).</param>
    /// <returns>The rows, of <paramref name="ids"/>' shape followed by C. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="table"/> is not 2-D.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments (such as an id out of range).</exception>
    public static Variable Embedding(Variable table, Tensor ids)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(ids);
        if (table.Shape.Count != 2)
        {
            throw new ArgumentException($"An embedding table is [V, C]; got shape [{string.Join(", ", table.Shape)}].", nameof(table));
        }
        var tape = GradientTape.ForRecording(table.RequiresGrad);
        var context = table.Context;
        var shape = new long[ids.Rank + 1];
        for (var i = 0; i < ids.Rank; i++)
        {
            shape[i] = ids.Shape[i];
        }
        shape[^1] = table.Shape[1];
        var y = NewOutput(context, tape, shape);
        Run(() => Ops.EmbeddingForward(context, table.Value, ids, y), y);
        var result = Result(y, tape);
        if (tape is not null)
        {
            var keptIds = tape.Keep(ids);
            tape.Record(() =>
            {
                var dtable = tape.GradientForKernel(table, out var accumulate);
                Ops.EmbeddingBackward(context, keptIds, GradientTape.OutputGradient(result)!, dtable, accumulate);
            }, result);
        }
        return result;
    }

    /// <summary>A view of <paramref name="x"/> with another shape of the same element count: no copy when the
    /// value is contiguous. The gradient flows back as a view too.</summary>
    /// <param name="x">The input.</param>
    /// <param name="shape">The new dimensions; one of them may be -1, inferred from the element count.</param>
    /// <returns>The reshaped variable. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException">The shape does not hold the same number of elements, or has more
    /// than one -1.</exception>
    public static Variable Reshape(Variable x, params ReadOnlySpan<long> shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        var resolved = ResolveShape(shape, x.Value.ElementCount);
        var tape = GradientTape.ForRecording(x.RequiresGrad);
        var y = TensorViews.Reshape(x.Value, resolved);
        if (tape is not null)
        {
            y.MoveTo(tape.Scope);
        }
        var result = Result(y, tape);
        tape?.Record(() =>
        {
            var owned = tape.TakeGradient(result);
            var dy = owned ?? GradientTape.OutputGradient(result)!;
            var dx = TensorViews.Reshape(dy, ToArray(x.Shape)).MoveTo(tape.Scope);
            if (!tape.AddGradient(x, dx, transferable: owned is not null))
            {
                dx.Dispose();
            }
            owned?.Dispose();  // a view (dx) keeps the memory alive
        }, result);
        return result;
    }

    /// <summary>Rows <paramref name="start"/> to <paramref name="start"/> + <paramref name="length"/> of the first
    /// dimension of <paramref name="x"/>, as a view (no copy). The gradient is added into those rows of
    /// <paramref name="x"/>'s gradient (the other rows receive zero).</summary>
    /// <param name="x">The input, rank &gt;= 1.</param>
    /// <param name="start">The first row.</param>
    /// <param name="length">The number of rows, &gt;= 1.</param>
    /// <returns>The slice. Ownership: see <see cref="Fn"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is a scalar.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The rows lie outside the first dimension.</exception>
    public static Variable Narrow(Variable x, long start, long length)
    {
        ArgumentNullException.ThrowIfNull(x);
        var xShape = RequireRank(x, 1, nameof(x));
        if (start < 0 || length < 1 || start + length > xShape[0])
        {
            throw new ArgumentOutOfRangeException(nameof(length),
                $"Rows [{start}, {start + length}) do not lie within the {xShape[0]} rows of the first dimension.");
        }
        var tape = GradientTape.ForRecording(x.RequiresGrad);
        var value = x.Value;
        var shape = ToArray(xShape);
        shape[0] = length;
        var y = value.View(value.Offset + start * value.Strides[0], shape, ToArray(value.Strides));
        if (tape is not null)
        {
            y.MoveTo(tape.Scope);
        }
        var result = Result(y, tape);
        tape?.Record(() =>
        {
            var dx = tape.GradientForPartialWrite(x);
            var rowSize = dx.ElementCount / xShape[0];
            using var rows = dx.View(dx.Offset + start * rowSize, shape);
            Ops.Add(x.Context, rows, GradientTape.OutputGradient(result)!, rows);
        }, result);
        return result;
    }

    // ------------------------------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------------------------------

    /// <summary>A new zero-filled output tensor: in the tape's scope when recording, else in the current scope.</summary>
    private static Tensor NewOutput(Context context, GradientTape? tape, IReadOnlyList<long> shape, Dtype dtype = Dtype.F32)
    {
        if (tape is not null)
        {
            return tape.NewTensor(context, shape, dtype);
        }
        Span<long> dims = stackalloc long[shape.Count];
        for (var i = 0; i < dims.Length; i++)
        {
            dims[i] = shape[i];
        }
        return Tensor.Create(context, dtype, dims);
    }

    /// <summary>Runs a forward kernel; disposes the outputs created for it if it fails.</summary>
    private static void Run(Action kernel, Tensor output, Tensor? second = null, Tensor? third = null, Tensor? fourth = null)
    {
        try
        {
            kernel();
        }
        catch
        {
            output.Dispose();
            second?.Dispose();
            third?.Dispose();
            fourth?.Dispose();
            throw;
        }
    }

    private static Variable Result(Tensor value, GradientTape? tape) => new(value, requiresGrad: tape is not null);

    private static IReadOnlyList<long> RequireRank(Variable x, int minimum, string name)
    {
        var shape = x.Shape;
        if (shape.Count < minimum)
        {
            throw new ArgumentException($"Expected rank >= {minimum} for '{name}', got shape [{string.Join(", ", shape)}].", name);
        }
        return shape;
    }

    private static long[] ToArray(IReadOnlyList<long> values)
    {
        var array = new long[values.Count];
        for (var i = 0; i < array.Length; i++)
        {
            array[i] = values[i];
        }
        return array;
    }

    private static long[] ResolveShape(ReadOnlySpan<long> shape, long elementCount)
    {
        var resolved = shape.ToArray();
        var inferred = -1;
        long known = 1;
        for (var i = 0; i < resolved.Length; i++)
        {
            if (resolved[i] == -1)
            {
                if (inferred >= 0)
                {
                    throw new ArgumentException("At most one dimension may be -1.", nameof(shape));
                }
                inferred = i;
            }
            else if (resolved[i] < 1)
            {
                throw new ArgumentException($"Dimension {i} is {resolved[i]}; dimensions are positive (or -1 once).", nameof(shape));
            }
            else
            {
                known *= resolved[i];
            }
        }
        if (inferred >= 0 && known > 0 && elementCount % known == 0)
        {
            resolved[inferred] = elementCount / known;
            known *= resolved[inferred];
        }
        if (known != elementCount || (inferred >= 0 && resolved[inferred] < 1))
        {
            throw new ArgumentException(
                $"Shape [{string.Join(", ", shape.ToArray())}] does not hold the {elementCount} elements of the input.", nameof(shape));
        }
        return resolved;
    }
}
