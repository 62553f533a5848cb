using NativeEngine.Interop;

namespace NativeEngine;

// Reductions: sums over rows (a bias's gradient) and of all elements (a loss, a global gradient
// norm). Computed in a fixed order: the bits do not depend on the thread count.
public static partial class Ops
{
    /// <summary>Sum over rows (<c>ne_sum_rows</c>): <c>output[c] = sum_n x[n, c]</c>, or added into
    /// <paramref name="output"/> with <paramref name="accumulate"/>. This is a bias's gradient.</summary>
    /// <param name="context">The context the kernel runs on; every tensor must belong to it.</param>
    /// <param name="x">The input, [N, C] f32 (any rank &gt;= 1: the leading dimensions are the rows).</param>
    /// <param name="output">Receives the sums, [C] f32 contiguous.</param>
    /// <param name="accumulate">True adds into <paramref name="output"/>; false overwrites it.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void SumRows(Context context, Tensor x, Tensor output, bool accumulate = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_sum_rows(context.Handle, Required(x, nameof(x)), Required(output, nameof(output)),
            accumulate ? 1 : 0));
    }

    /// <summary>Sum of all elements, or of their squares (<c>ne_reduce_sum</c>), accumulated in double, into a
    /// one-element tensor; with <paramref name="accumulate"/>, added into it, so that several tensors reduce
    /// into one value (a global gradient norm) without a round trip to the host.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="x">The input, f32 of any rank (a scalar included).</param>
    /// <param name="output">Receives the sum, f32 of shape [] or [1].</param>
    /// <param name="squares">True sums the squares of the elements.</param>
    /// <param name="accumulate">True adds into <paramref name="output"/>; false overwrites it.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void ReduceSum(Context context, Tensor x, Tensor output, bool squares = false, bool accumulate = false)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_reduce_sum(context.Handle, Required(x, nameof(x)), squares ? 1 : 0,
            Required(output, nameof(output)), accumulate ? 1 : 0));
    }

    /// <summary>Sums over the rows of <paramref name="x"/> into a new tensor, on its context. See
    /// <see cref="SumRows(Context, Tensor, Tensor, bool)"/>.</summary>
    /// <param name="x">The input, [N, C] f32 (any rank &gt;= 1).</param>
    /// <returns>A new [C] f32 tensor. Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is a scalar (rank 0).</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor SumRows(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var shape = x.Shape;
        if (shape.Count == 0)
        {
            throw new ArgumentException("Expected a tensor of rank >= 1 for 'x', got a scalar.", nameof(x));
        }
        return Allocate(x.Context, Dtype.F32, [shape[^1]], output => SumRows(x.Context, x, output));
    }

    /// <summary>Sum of all elements of <paramref name="x"/> into a new scalar tensor, on its context. See
    /// <see cref="ReduceSum"/>.</summary>
    /// <param name="x">The input, f32 of any rank.</param>
    /// <returns>A new f32 scalar (rank 0). Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Sum(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocate(x.Context, Dtype.F32, [], output => ReduceSum(x.Context, x, output));
    }

    /// <summary>Sum of the squares of all elements of <paramref name="x"/> into a new scalar tensor, on its
    /// context (the square of its Euclidean norm). See <see cref="ReduceSum"/>.</summary>
    /// <param name="x">The input, f32 of any rank.</param>
    /// <returns>A new f32 scalar (rank 0). Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor SumOfSquares(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocate(x.Context, Dtype.F32, [], output => ReduceSum(x.Context, x, output, squares: true));
    }
}
