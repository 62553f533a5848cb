using NativeEngine.Interop;

namespace NativeEngine;

// f32 GEMM over the last two dimensions, batched over the leading ones.
public static partial class Ops
{
    /// <summary>f32 GEMM (<c>ne_gemm</c>): <c>c = alpha * op(a) * op(b) + beta * c</c> with <c>op(x)</c> = x or
    /// its transpose. The matrices are the last two dimensions (contiguous last dimension, any row
    /// stride); leading dimensions form a batch, and <paramref name="a"/> or <paramref name="b"/> may
    /// be 2-D, shared by every batch. With <paramref name="beta"/> = 0, <paramref name="c"/> is
    /// overwritten without being read. The bits of the result do not depend on the thread count.</summary>
    /// <param name="context">The context the kernel runs on; every tensor must belong to it.</param>
    /// <param name="a">op(a) is [..., M, K]; stored [..., K, M] when <paramref name="transposeA"/>.</param>
    /// <param name="b">op(b) is [..., K, N]; stored [..., N, K] when <paramref name="transposeB"/> (a
    /// linear layer's weight [out, in]).</param>
    /// <param name="c">The result, [..., M, N]; must not overlap <paramref name="a"/> or <paramref name="b"/>.</param>
    /// <param name="transposeA">Use the transpose of <paramref name="a"/>.</param>
    /// <param name="transposeB">Use the transpose of <paramref name="b"/>.</param>
    /// <param name="alpha">Scales the product; finite.</param>
    /// <param name="beta">Scales the previous <paramref name="c"/>; finite.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void Gemm(Context context, Tensor a, Tensor b, Tensor c, bool transposeA = false,
        bool transposeB = false, float alpha = 1f, float beta = 0f)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = new NeGemmParams
        {
            StructSize = (uint)sizeof(NeGemmParams),
            TransposeA = transposeA ? 1 : 0,
            TransposeB = transposeB ? 1 : 0,
            Alpha = alpha,
            Beta = beta,
        };
        NativeStatus.Check(NativeMethods.ne_gemm(context.Handle, &parameters,
            Required(a, nameof(a)), Required(b, nameof(b)), Required(c, nameof(c))));
    }

    /// <summary>Matrix product <c>op(a) * op(b)</c> into a new tensor, on <paramref name="a"/>'s context.
    /// See <see cref="Gemm"/>.</summary>
    /// <param name="a">op(a) is [..., M, K], f32, rank &gt;= 2.</param>
    /// <param name="b">op(b) is [..., K, N], f32, rank &gt;= 2.</param>
    /// <param name="transposeA">Use the transpose of <paramref name="a"/>.</param>
    /// <param name="transposeB">Use the transpose of <paramref name="b"/>.</param>
    /// <returns>A new [..., M, N] f32 tensor, with the batch dimensions of whichever operand has them.
    /// Ownership: the caller (or the current <see cref="TensorScope"/>).</returns>
    /// <exception cref="ArgumentException">An operand has rank below 2.</exception>
    /// <exception cref="NativeEngineException">The library refused the arguments (such as inner
    /// dimensions that disagree).</exception>
    public static Tensor MatMul(Tensor a, Tensor b, bool transposeA = false, bool transposeB = false)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var aShape = AtLeastMatrix(a, nameof(a));
        var bShape = AtLeastMatrix(b, nameof(b));
        var batched = aShape.Count > 2 ? aShape : bShape;
        var shape = new long[batched.Count];
        for (var i = 0; i < shape.Length - 2; i++)
        {
            shape[i] = batched[i];
        }
        shape[^2] = transposeA ? aShape[^1] : aShape[^2];
        shape[^1] = transposeB ? bShape[^2] : bShape[^1];
        return Allocate(a.Context, Dtype.F32, shape, c => Gemm(a.Context, a, b, c, transposeA, transposeB));
    }

    private static IReadOnlyList<long> AtLeastMatrix(Tensor tensor, string name)
    {
        var shape = tensor.Shape;
        if (shape.Count < 2)
        {
            throw new ArgumentException(
                $"Expected a matrix (rank >= 2) for '{name}', got a tensor of shape [{string.Join(", ", shape)}].", name);
        }
        return shape;
    }
}
