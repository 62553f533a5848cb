namespace NativeEngine.Tests;

public sealed class TensorScopeTests
{
    [Fact]
    public void DisposingAScopeDisposesTheTensorsCreatedInIt()
    {
        using var context = Context.Create();
        Tensor a, b, view;
        using (var scope = new TensorScope())
        {
            Assert.Same(scope, TensorScope.Current);
            a = Tensor.Create(context, Dtype.F32, 4);
            b = Tensor.FromArray<float>(context, [1f, 2f]);
            view = a.View(1, [2]);
            Assert.Equal(3, scope.Count);
            Assert.Same(scope, view.Scope);
            Assert.Equal(3, context.GetMemoryStats().LiveTensors);
        }

        Assert.Null(TensorScope.Current);
        Assert.True(a.IsDisposed && b.IsDisposed && view.IsDisposed);
        Assert.Equal(0, context.GetMemoryStats().LiveTensors);
        Assert.Equal(0, context.GetMemoryStats().LiveBytes);
    }

    [Fact]
    public void ScopesNestAndTensorsCanMoveOutward()
    {
        using var context = Context.Create();
        using var outer = new TensorScope();
        Tensor kept, dropped, detached;
        using (var inner = new TensorScope())
        {
            Assert.Same(outer, inner.Parent);
            kept = Tensor.Create(context, Dtype.F32, 2).MoveTo(outer);
            dropped = Tensor.Create(context, Dtype.F32, 2);
            detached = inner.Detach(Tensor.Create(context, Dtype.F32, 2));
            Assert.Throws<InvalidOperationException>(() => inner.Detach(kept));
        }

        Assert.Same(outer, TensorScope.Current);
        Assert.True(dropped.IsDisposed);
        Assert.False(kept.IsDisposed);
        Assert.True(outer.Contains(kept));
        Assert.False(detached.IsDisposed);
        Assert.Null(detached.Scope);

        detached.Dispose();
        outer.Dispose();
        Assert.True(kept.IsDisposed);
        Assert.Equal(0, context.GetMemoryStats().LiveTensors);
    }

    [Fact]
    public void ATensorDisposedByHandLeavesItsScope()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();
        var tensor = Tensor.Create(context, Dtype.I8, 8);
        tensor.Dispose();

        Assert.Equal(0, scope.Count);
        Assert.Throws<ObjectDisposedException>(() => tensor.MoveTo(null));
    }

    [Fact]
    public void AllocatingKernelsRegisterTheirOutputsAndDisposeThemOnFailure()
    {
        using var context = Context.Create();
        using var x = Tensor.Create(context, Dtype.F32, 2, 4);
        using var wrongGamma = Tensor.Create(context, Dtype.F32, 5);
        using var scope = new TensorScope();

        Assert.Throws<NativeEngineException>(() => Ops.LayerNorm(x, wrongGamma));

        Assert.Equal(0, scope.Count);
        Assert.Equal(2, context.GetMemoryStats().LiveTensors);
    }

    [Fact]
    public void OutOfOrderDisposeStillDisposesEverythingAndRestoresTheParent()
    {
        using var context = Context.Create();
        var outer = new TensorScope();
        var inner = new TensorScope();
        var a = Tensor.Create(context, Dtype.F32, 1);
        outer.Dispose();
        // inner is still current and alive; a tensor created now belongs to it.
        var b = Tensor.Create(context, Dtype.F32, 1);
        Assert.Same(inner, b.Scope);
        inner.Dispose();

        Assert.Null(TensorScope.Current);
        Assert.True(a.IsDisposed && b.IsDisposed);
        using var unscoped = Tensor.Create(context, Dtype.F32, 1);
        Assert.Null(unscoped.Scope);
        Assert.Throws<ObjectDisposedException>(() => unscoped.MoveTo(outer));
        Assert.Equal(1, context.GetMemoryStats().LiveTensors);
    }

    [Fact]
    public async Task TheScopeFlowsIntoTasksButNotOutOfAsyncMethods()
    {
        using var context = Context.Create();
        using var scope = new TensorScope();

        var fromTask = await Task.Run(() => Tensor.Create(context, Dtype.F32, 1));
        Assert.Same(scope, fromTask.Scope);

        await CreateScopeInsideAsyncMethod(context);
        Assert.Same(scope, TensorScope.Current);

        scope.Dispose();
        Assert.True(fromTask.IsDisposed);
        Assert.Equal(0, context.GetMemoryStats().LiveTensors);
    }

    private static async Task CreateScopeInsideAsyncMethod(Context context)
    {
        using var inner = new TensorScope();
        await Task.Yield();
        Assert.Same(inner, TensorScope.Current);
        _ = Tensor.Create(context, Dtype.F32, 1);
    }
}
