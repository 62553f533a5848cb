namespace NativeEngine.Tests;

public sealed class TensorTests
{
    [Fact]
    public void CreateGivesAZeroFilledContiguousTensor()
    {
        using var context = Context.Create();
        using var tensor = Tensor.Create(context, Dtype.F32, 2, 3, 4);

        Assert.Equal(Dtype.F32, tensor.Dtype);
        Assert.Equal(3, tensor.Rank);
        Assert.Equal([2L, 3, 4], tensor.Shape);
        Assert.Equal([12L, 4, 1], tensor.Strides);
        Assert.Equal(24, tensor.ElementCount);
        Assert.True(tensor.IsContiguous);
        Assert.Same(context, tensor.Context);
        Assert.All(tensor.ToArray<float>(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void AScalarHasRankZeroAndOneElement()
    {
        using var context = Context.Create();
        using var scalar = Tensor.Create(context, Dtype.I32);
        scalar.Fill(-7);

        Assert.Equal(0, scalar.Rank);
        Assert.Equal(1, scalar.ElementCount);
        Assert.Equal([-7], scalar.ToArray<int>());
    }

    [Fact]
    public void FromArrayRoundTripsEveryInferredDtype()
    {
        using var context = Context.Create();
        float[] floats = [1.5f, -2f, 3.25f, float.MaxValue, float.Epsilon, -0f];
        int[] ints = [int.MinValue, -1, 0, 1, int.MaxValue, 42];
        sbyte[] bytes = [sbyte.MinValue, -1, 0, 1, sbyte.MaxValue, 7];
        Half[] halves = [(Half)1.5f, (Half)(-2f), Half.MaxValue, Half.Epsilon, (Half)0f, (Half)65504f];

        using var f = Tensor.FromArray<float>(context, floats, 2, 3);
        using var i = Tensor.FromArray<int>(context, ints, 3, 2);
        using var b = Tensor.FromArray<sbyte>(context, bytes, 6);
        using var h = Tensor.FromArray<Half>(context, halves, 1, 6);

        Assert.Equal((Dtype.F32, Dtype.I32, Dtype.I8, Dtype.F16), (f.Dtype, i.Dtype, b.Dtype, h.Dtype));
        Assert.Equal(floats, f.ToArray<float>());
        Assert.Equal(ints, i.ToArray<int>());
        Assert.Equal(bytes, b.ToArray<sbyte>());
        Assert.Equal(halves, h.ToArray<Half>());
        Assert.Equal([2L, 3], f.Shape);
    }

    [Fact]
    public void FromArrayWithoutAShapeIsOneDimensional()
    {
        using var context = Context.Create();
        using var tensor = Tensor.FromArray<int>(context, [1, 2, 3, 4, 5]);

        Assert.Equal([5L], tensor.Shape);
    }

    [Fact]
    public void FromArrayWithTheWrongElementCountIsAShapeMismatchAndLeaksNothing()
    {
        using var context = Context.Create();

        var e = Assert.Throws<NativeEngineException>(() => Tensor.FromArray<float>(context, [1f, 2f, 3f], 2, 2));

        Assert.Equal(Status.ShapeMismatch, e.Status);
        Assert.Contains("size_bytes", e.Message);
        Assert.Equal(0, context.GetMemoryStats().LiveTensors);
    }

    [Fact]
    public void ElementTypesThatDoNotMatchTheDtypeAreRefusedBeforeCopying()
    {
        using var context = Context.Create();
        using var f32 = Tensor.Create(context, Dtype.F32, 4);
        using var i8 = Tensor.Create(context, Dtype.I8, 4);
        using var bf16 = Tensor.Create(context, Dtype.Bf16, 4);

        // Same size, other kind.
        Assert.Throws<ArgumentException>(() => f32.ToArray<int>());
        Assert.Throws<ArgumentException>(() => f32.CopyFrom<int>([1, 2, 3, 4]));
        Assert.Throws<ArgumentException>(() => f32.CopyTo<uint>(new uint[4]));
        // Other size.
        Assert.Throws<ArgumentException>(() => f32.ToArray<double>());
        Assert.Throws<ArgumentException>(() => i8.ToArray<byte>());
        Assert.Throws<ArgumentException>(() => i8.ToArray<short>());
        // Half is F16 only; BF16 is reached through its raw bits.
        Assert.Throws<ArgumentException>(() => bf16.ToArray<Half>());
        bf16.CopyFrom<ushort>([0x3f80, 0x4000, 0xbf80, 0]);
        Assert.Equal([0x3f80, 0x4000, 0xbf80, 0], bf16.ToArray<ushort>());
        // No dtype to infer.
        Assert.Throws<ArgumentException>(() => Tensor.FromArray<double>(context, [1.0]));
        Assert.Equal(3, context.GetMemoryStats().LiveTensors);
    }

    [Fact]
    public void CopyToChecksTheDestinationSize()
    {
        using var context = Context.Create();
        using var tensor = Tensor.Create(context, Dtype.F32, 2, 2);

        var e = Assert.Throws<NativeEngineException>(() => tensor.CopyTo<float>(new float[3]));
        Assert.Equal(Status.ShapeMismatch, e.Status);
        var empty = Assert.Throws<NativeEngineException>(() => tensor.CopyTo<float>(Span<float>.Empty));
        Assert.Equal(Status.ShapeMismatch, empty.Status);
    }

    [Fact]
    public void FillConvertsToTheDtype()
    {
        using var context = Context.Create();
        using var f = Tensor.Create(context, Dtype.F32, 3);
        using var i = Tensor.Create(context, Dtype.I8, 3);
        f.Fill(0.5);
        i.Fill(-128);

        Assert.Equal([0.5f, 0.5f, 0.5f], f.ToArray<float>());
        Assert.Equal([-128, -128, -128], i.ToArray<sbyte>());
        Assert.Throws<NativeEngineException>(() => i.Fill(1000));
    }

    [Fact]
    public void ViewsShareMemoryAndStridedViewsAreCopiedThroughStaging()
    {
        using var context = Context.Create();
        using var matrix = Tensor.FromArray<float>(context, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 3, 4);
        // Column 1: offset 1, shape [3], stride 4.
        using var column = matrix.View(1, [3], [4]);
        // Rows 1..2 (contiguous): offset 4, shape [2, 4].
        using var rows = matrix.View(4, [2, 4]);

        Assert.False(column.IsContiguous);
        Assert.Equal(1, column.Offset);
        Assert.Equal([1f, 5, 9], column.ToArray<float>());
        Assert.True(rows.IsContiguous);
        Assert.Equal([4f, 5, 6, 7, 8, 9, 10, 11], rows.ToArray<float>());

        column.CopyFrom<float>([-1f, -5f, -9f]);
        rows.Fill(2);

        Assert.Equal([0f, -1, 2, 3, 2, 2, 2, 2, 2, 2, 2, 2], matrix.ToArray<float>());
        Assert.Equal(3, context.GetMemoryStats().LiveTensors);
    }

    [Fact]
    public void AViewOutsideTheAllocationIsAShapeMismatch()
    {
        using var context = Context.Create();
        using var tensor = Tensor.Create(context, Dtype.F32, 4);

        var e = Assert.Throws<NativeEngineException>(() => tensor.View(2, [3]));
        Assert.Equal(Status.ShapeMismatch, e.Status);
        Assert.Throws<ArgumentException>(() => tensor.View(0, [2, 2], [1]));
        Assert.Equal(1, context.GetMemoryStats().LiveTensors);
    }

    [Fact]
    public void ARankAboveTheMaximumIsRefusedByTheLibrary()
    {
        using var context = Context.Create();

        var e = Assert.Throws<NativeEngineException>(() => Tensor.Create(context, Dtype.F32, 1, 1, 1, 1, 1, 1, 1, 1, 1));
        Assert.Equal(Status.InvalidArgument, e.Status);
        Assert.Contains("rank", e.Message);
        var zero = Assert.Throws<NativeEngineException>(() => Tensor.Create(context, Dtype.F32, 2, 0));
        Assert.Equal(Status.InvalidArgument, zero.Status);
    }

    [Fact]
    public void CopyFromTensorCopiesAcrossContextsAndClonesAreIndependent()
    {
        using var a = Context.Create();
        using var b = Context.Create(new ContextOptions { NumThreads = 1 });
        using var source = Tensor.FromArray<int>(a, [1, 2, 3, 4, 5, 6], 2, 3);
        using var destination = Tensor.Create(b, Dtype.I32, 2, 3);
        destination.CopyFrom(source);
        using var transposedView = source.View(0, [3, 2], [1, 3]);
        using var clone = transposedView.Clone();
        source.Fill(0);

        Assert.Equal([1, 2, 3, 4, 5, 6], destination.ToArray<int>());
        Assert.True(clone.IsContiguous);
        Assert.Equal([1, 4, 2, 5, 3, 6], clone.ToArray<int>());
    }

    [Fact]
    public void UseAfterDisposeThrowsObjectDisposed()
    {
        using var context = Context.Create();
        var tensor = Tensor.Create(context, Dtype.F32, 2);
        using var other = Tensor.Create(context, Dtype.F32, 2);
        tensor.Dispose();
        tensor.Dispose();

        Assert.True(tensor.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => tensor.Shape);
        Assert.Throws<ObjectDisposedException>(() => tensor.ToArray<float>());
        Assert.Throws<ObjectDisposedException>(() => tensor.Fill(1));
        Assert.Throws<ObjectDisposedException>(() => tensor.View(0, [1]));
        var e = Assert.Throws<ObjectDisposedException>(() => other.CopyFrom(tensor));
        Assert.Contains("'source'", e.Message);
        Assert.Equal("Tensor(disposed)", tensor.ToString());
    }

    [Fact]
    public void ATensorOutlivesItsContextsDispose()
    {
        var context = Context.Create();
        using var tensor = Tensor.FromArray<float>(context, [1f, 2f]);
        context.Dispose();

        // Host copies need no context; operations that need one say it is gone.
        Assert.Equal([1f, 2f], tensor.ToArray<float>());
        Assert.Throws<ObjectDisposedException>(() => tensor.Clone());
    }
}
