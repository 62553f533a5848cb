using NativeEngine.Interop;

namespace NativeEngine;

// Element-wise small ops of the model: add (with broadcast), axpby, GELU, dropout and softmax.
// Shapes: tensors of any rank whose last dimension is contiguous and whose leading dimensions
// collapse into rows of one stride. An output may be the very same tensor (view) as an input of its
// shape (in place); any other overlap with an input is refused by the library.
public static partial class Ops
{
    /// <summary>Element-wise addition (<c>ne_add</c>): <c>output = a + b</c>. <paramref name="b"/> has
    /// <paramref name="a"/>'s shape, or the shape of <paramref name="a"/>'s trailing dimensions and is
    /// broadcast over the leading ones (a bias [C] added to [N, C]; a positional table [T, C] added to
    /// [B, T, C]). f32 on the CPU.</summary>
    /// <param name="context">The context the kernel runs on; every tensor must belong to it.</param>
    /// <param name="a">The first operand, f32 of any rank.</param>
    /// <param name="b">The second operand: <paramref name="a"/>'s shape, or its trailing dimensions.</param>
    /// <param name="output">Receives the sum, <paramref name="a"/>'s shape; may be <paramref name="a"/>
    /// (in place), or <paramref name="b"/> when it is not broadcast.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void Add(Context context, Tensor a, Tensor b, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_add(context.Handle,
            Required(a, nameof(a)), Required(b, nameof(b)), Required(output, nameof(output))));
    }

    /// <summary>Scaled accumulation (<c>ne_axpby</c>): <c>y = alpha * x + beta * y</c> element-wise, with
    /// one fused multiply-add per element. With <paramref name="beta"/> = 0, <paramref name="y"/> is not
    /// read (a scaled copy). This is the SGD update <c>param = -lr * grad + 1 * param</c> and the
    /// in-place gradient accumulation <c>grad = 1 * contribution + 1 * grad</c>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="alpha">Scales <paramref name="x"/>.</param>
    /// <param name="x">The input, f32.</param>
    /// <param name="beta">Scales the previous <paramref name="y"/>; 0 does not read it.</param>
    /// <param name="y">The accumulator, <paramref name="x"/>'s shape; may be <paramref name="x"/>.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void Axpby(Context context, float alpha, Tensor x, float beta, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_axpby(context.Handle, alpha, Required(x, nameof(x)), beta, Required(y, nameof(y))));
    }

    /// <summary>GELU forward with the tanh approximation of GPT-2 (<c>ne_gelu_forward</c>):
    /// <c>y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))</c>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="x">The input, f32.</param>
    /// <param name="y">Receives the output, <paramref name="x"/>'s shape; may be <paramref name="x"/>.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void GeluForward(Context context, Tensor x, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_gelu_forward(context.Handle, Required(x, nameof(x)), Required(y, nameof(y))));
    }

    /// <summary>GELU backward (<c>ne_gelu_backward</c>): <c>dx = dy * GELU'(x)</c>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="x">The forward pass's input, f32.</param>
    /// <param name="dy">The output gradient, <paramref name="x"/>'s shape.</param>
    /// <param name="dx">Receives the input gradient, <paramref name="x"/>'s shape; may be <paramref name="dy"/>
    /// (or <paramref name="x"/>).</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void GeluBackward(Context context, Tensor x, Tensor dy, Tensor dx)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_gelu_backward(context.Handle,
            Required(x, nameof(x)), Required(dy, nameof(dy)), Required(dx, nameof(dx))));
    }

    /// <summary>Inverted dropout forward (<c>ne_dropout_forward</c>): <c>output = x * keep / (1 - probability)</c>
    /// with <c>keep</c> in {0, 1}. Element i (its flat row-major index) is kept by a hash of
    /// (<paramref name="seed"/>, i), so the backward pass regenerates the mask from the same seed instead
    /// of storing it.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="x">The input, f32.</param>
    /// <param name="output">Receives the output, <paramref name="x"/>'s shape; may be <paramref name="x"/>.</param>
    /// <param name="probability">Probability of dropping an element, in [0, 1).</param>
    /// <param name="seed">Seed of the mask; use a new one for every call that should draw a new mask.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void DropoutForward(Context context, Tensor x, Tensor output, float probability, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = DropoutParams(probability, seed);
        NativeStatus.Check(NativeMethods.ne_dropout_forward(context.Handle, &parameters,
            Required(x, nameof(x)), Required(output, nameof(output))));
    }

    /// <summary>Dropout backward (<c>ne_dropout_backward</c>): <c>dx = doutput * keep / (1 - probability)</c>,
    /// with the mask the forward pass drew from the same <paramref name="probability"/> and
    /// <paramref name="seed"/>.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="doutput">The output gradient, f32.</param>
    /// <param name="dx">Receives the input gradient, <paramref name="doutput"/>'s shape; may be
    /// <paramref name="doutput"/>.</param>
    /// <param name="probability">As in the forward pass.</param>
    /// <param name="seed">As in the forward pass.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static unsafe void DropoutBackward(Context context, Tensor doutput, Tensor dx, float probability, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parameters = DropoutParams(probability, seed);
        NativeStatus.Check(NativeMethods.ne_dropout_backward(context.Handle, &parameters,
            Required(doutput, nameof(doutput)), Required(dx, nameof(dx))));
    }

    /// <summary>Softmax over the last dimension (<c>ne_softmax_forward</c>), for use outside training (such
    /// as attention maps): rows of -infinity give 0.</summary>
    /// <param name="context">The context the kernel runs on.</param>
    /// <param name="x">The input, [N, C] f32 (any rank &gt;= 1).</param>
    /// <param name="output">Receives the probabilities, <paramref name="x"/>'s shape; may be <paramref name="x"/>.</param>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static void SoftmaxForward(Context context, Tensor x, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeStatus.Check(NativeMethods.ne_softmax_forward(context.Handle, Required(x, nameof(x)), Required(output, nameof(output))));
    }

    /// <summary><c>a + b</c> into a new tensor, on <paramref name="a"/>'s context. See
    /// <see cref="Add(Context, Tensor, Tensor, Tensor)"/> for the broadcast of <paramref name="b"/>.</summary>
    /// <param name="a">The first operand, f32.</param>
    /// <param name="b">The second operand: <paramref name="a"/>'s shape, or its trailing dimensions.</param>
    /// <returns>A new f32 tensor of <paramref name="a"/>'s shape. Ownership: the caller (or the current
    /// <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Add(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        return Allocate(a.Context, Dtype.F32, a.Shape, output => Add(a.Context, a, b, output));
    }

    /// <summary>GELU of <paramref name="x"/> into a new tensor, on its context. See <see cref="GeluForward"/>.</summary>
    /// <param name="x">The input, f32.</param>
    /// <returns>A new f32 tensor of <paramref name="x"/>'s shape. Ownership: the caller (or the current
    /// <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Gelu(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocate(x.Context, Dtype.F32, x.Shape, y => GeluForward(x.Context, x, y));
    }

    /// <summary>Inverted dropout of <paramref name="x"/> into a new tensor, on its context. See
    /// <see cref="DropoutForward"/>.</summary>
    /// <param name="x">The input, f32.</param>
    /// <param name="probability">Probability of dropping an element, in [0, 1).</param>
    /// <param name="seed">Seed of the mask.</param>
    /// <returns>A new f32 tensor of <paramref name="x"/>'s shape. Ownership: the caller (or the current
    /// <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Dropout(Tensor x, float probability, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocate(x.Context, Dtype.F32, x.Shape, output => DropoutForward(x.Context, x, output, probability, seed));
    }

    /// <summary>Softmax over the last dimension of <paramref name="x"/> into a new tensor, on its context.
    /// See <see cref="SoftmaxForward"/>.</summary>
    /// <param name="x">The input, [N, C] f32 (any rank &gt;= 1).</param>
    /// <returns>A new f32 tensor of <paramref name="x"/>'s shape. Ownership: the caller (or the current
    /// <see cref="TensorScope"/>).</returns>
    /// <exception cref="NativeEngineException">The library refused the arguments.</exception>
    public static Tensor Softmax(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocate(x.Context, Dtype.F32, x.Shape, output => SoftmaxForward(x.Context, x, output));
    }

    private static unsafe NeDropoutParams DropoutParams(float probability, ulong seed) => new()
    {
        StructSize = (uint)sizeof(NeDropoutParams),
        Probability = probability,
        Seed = seed,
    };
}
