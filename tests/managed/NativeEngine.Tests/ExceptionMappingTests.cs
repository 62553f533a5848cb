namespace NativeEngine.Tests;

/// <summary>Native failures surface as NativeEngineException with the library's status and message;
/// managed-only misuse as the usual .NET exceptions.</summary>
public sealed class ExceptionMappingTests
{
    [Fact]
    public void ACopyBetweenShapesThatDifferIsAShapeMismatchNamingTheArgument()
    {
        using var context = Context.Create();
        using var source = Tensor.Create(context, Dtype.F32, 2, 3);
        using var destination = Tensor.Create(context, Dtype.F32, 3, 2);

        var e = Assert.Throws<NativeEngineException>(() => destination.CopyFrom(source));

        Assert.Equal(Status.ShapeMismatch, e.Status);
        Assert.StartsWith("ne_tensor_copy: argument 'destination'", e.NativeMessage);
        Assert.Contains("[2, 3]", e.NativeMessage);
        Assert.Contains(e.NativeMessage, e.Message);
        Assert.Contains("ShapeMismatch", e.Message);
    }

    [Fact]
    public void AKernelCalledWithAnOutputOfTheWrongShapeIsAShapeMismatchNamingTheOutput()
    {
        using var context = Context.Create();
        using var x = Tensor.Create(context, Dtype.F32, 4, 8);
        using var gamma = Tensor.Create(context, Dtype.F32, 8);
        using var y = Tensor.Create(context, Dtype.F32, 4, 7);
        y.Fill(3);

        var e = Assert.Throws<NativeEngineException>(() => Ops.LayerNormForward(context, x, null, gamma, null, y));

        Assert.Equal(Status.ShapeMismatch, e.Status);
        Assert.StartsWith("ne_layernorm_forward:", e.NativeMessage);
        Assert.Contains("'y'", e.NativeMessage);
        // A failing call leaves its outputs untouched.
        Assert.All(y.ToArray<float>(), v => Assert.Equal(3f, v));
    }

    [Fact]
    public void AKernelCalledWithTheWrongDtypeIsADtypeMismatch()
    {
        using var context = Context.Create();
        using var x = Tensor.Create(context, Dtype.I32, 4, 8);
        using var q = Tensor.Create(context, Dtype.I8, 4, 8);
        using var scales = Tensor.Create(context, Dtype.F32, 4);

        var e = Assert.Throws<NativeEngineException>(() => Ops.QuantizeInt8(context, QuantAxis.PerRow, x, q, scales));

        Assert.Equal(Status.DtypeMismatch, e.Status);
        Assert.Contains("'x'", e.NativeMessage);
    }

    [Fact]
    public void ATensorOfAnotherContextIsAContextMismatch()
    {
        using var context = Context.Create();
        using var other = Context.Create();
        using var a = Tensor.Create(context, Dtype.I8, 2, 4);
        using var b = Tensor.Create(other, Dtype.I8, 3, 4);
        using var c = Tensor.Create(context, Dtype.I32, 2, 3);

        var e = Assert.Throws<NativeEngineException>(() => Ops.GemmInt8(context, a, b, null, null, null, c));

        Assert.Equal(Status.ContextMismatch, e.Status);
        Assert.Contains("'b'", e.NativeMessage);
    }

    [Fact]
    public void ScalesWithAnInt32GemmAreRefused()
    {
        using var context = Context.Create();
        using var a = Tensor.Create(context, Dtype.I8, 2, 4);
        using var b = Tensor.Create(context, Dtype.I8, 3, 4);
        using var aScales = Tensor.Create(context, Dtype.F32, 2);
        using var bScales = Tensor.Create(context, Dtype.F32, 3);
        using var c = Tensor.Create(context, Dtype.I32, 2, 3);

        var e = Assert.Throws<NativeEngineException>(() => Ops.GemmInt8(context, a, b, aScales, bScales, null, c));

        Assert.NotEqual(Status.Ok, e.Status);
        Assert.StartsWith("ne_gemm_int8:", e.NativeMessage);
    }

    [Fact]
    public void AnInvalidEpsilonIsAnInvalidArgument()
    {
        using var context = Context.Create();
        using var x = Tensor.Create(context, Dtype.F32, 2, 4);
        using var gamma = Tensor.Create(context, Dtype.F32, 4);
        using var y = Tensor.Create(context, Dtype.F32, 2, 4);

        foreach (var epsilon in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
        {
            var e = Assert.Throws<NativeEngineException>(() => Ops.RmsNormForward(context, x, null, gamma, y, epsilon: epsilon));
            Assert.Equal(Status.InvalidArgument, e.Status);
            Assert.Contains("epsilon", e.NativeMessage);
        }
    }

    [Fact]
    public void ManagedMisuseThrowsTheUsualExceptions()
    {
        using var context = Context.Create();
        using var x = Tensor.Create(context, Dtype.F32, 2, 4);
        using var gamma = Tensor.Create(context, Dtype.F32, 4);
        var y = Tensor.Create(context, Dtype.F32, 2, 4);
        y.Dispose();

        Assert.Throws<ArgumentNullException>(() => Ops.LayerNormForward(null!, x, null, gamma, null, x));
        var missing = Assert.Throws<ArgumentNullException>(() => Ops.LayerNormForward(context, x, null, null!, null, x));
        Assert.Equal("gamma", missing.ParamName);
        var disposed = Assert.Throws<ObjectDisposedException>(() => Ops.LayerNormForward(context, x, null, gamma, null, y));
        Assert.Contains("'y'", disposed.Message);
        Assert.Throws<ArgumentException>(() => Ops.Quantize(gamma));
        Assert.Throws<ArgumentNullException>(() => Tensor.Create(null!, Dtype.F32, 1));
    }

    [Fact]
    public unsafe void TheNativeMessageIsPerThreadAndReadRightAfterTheCall()
    {
        using var context = Context.Create();
        using var small = Tensor.Create(context, Dtype.F32, 2);
        using var large = Tensor.Create(context, Dtype.F32, 3);

        var here = Assert.Throws<NativeEngineException>(() => small.CopyFrom(large));
        NativeEngineException? there = null;
        var thread = new Thread(() => there = Assert.Throws<NativeEngineException>(() => Tensor.Create(context, Dtype.F32, -1)));
        thread.Start();
        thread.Join();

        Assert.Equal(Status.ShapeMismatch, here.Status);
        Assert.StartsWith("ne_tensor_copy:", here.NativeMessage);
        Assert.Equal(Status.InvalidArgument, there!.Status);
        Assert.StartsWith("ne_tensor_create:", there.NativeMessage);
        // The other thread's failure did not replace this thread's message.
        var lastHere = System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)NativeEngine.Interop.NativeMethods.ne_last_error());
        Assert.Equal(here.NativeMessage, lastHere);
    }
}
