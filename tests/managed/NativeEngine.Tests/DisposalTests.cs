using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>Deterministic release of native memory: counts return to zero when the managed objects are disposed.</summary>
public sealed class DisposalTests
{
    [Fact]
    public void DisposingTensorsAndViewsReturnsTheContextsCountsToZero()
    {
        using var context = Context.Create();
        Assert.Equal(new MemoryStats { LiveContexts = 0, LiveTensors = 0, LiveAllocations = 0, LiveBytes = 0, PeakBytes = 0 },
            context.GetMemoryStats());

        var a = Tensor.Create(context, Dtype.F32, 16, 16);
        var b = Tensor.FromArray<sbyte>(context, new sbyte[100], 10, 10);
        var view = a.View(16, [4, 16]);
        var viewOfView = view.View(20, [8], [2]);
        var stats = context.GetMemoryStats();
        Assert.Equal(4, stats.LiveTensors);
        Assert.Equal(2, stats.LiveAllocations);
        Assert.Equal(16 * 16 * 4 + 100, stats.LiveBytes);
        Assert.Equal(stats.LiveBytes, stats.PeakBytes);

        // The views keep a's memory after a is disposed.
        a.Dispose();
        Assert.Equal(2, context.GetMemoryStats().LiveAllocations);
        view.Dispose();
        b.Dispose();
        Assert.Equal(1, context.GetMemoryStats().LiveAllocations);
        viewOfView.Dispose();

        stats = context.GetMemoryStats();
        Assert.Equal((0L, 0L, 0L), (stats.LiveTensors, stats.LiveAllocations, stats.LiveBytes));
        Assert.Equal(16 * 16 * 4 + 100, stats.PeakBytes);
    }

    [Fact]
    public void DisposingAScopeReturnsTheContextsCountsToZero()
    {
        using var context = Context.Create();
        using (new TensorScope())
        {
            using var nested = new TensorScope();
            var x = Tensor.FromArray<float>(context, [1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
            _ = x.View(1, [2, 2], [3, 1]);
            _ = x.Clone();
            Assert.Equal(3, context.GetMemoryStats().LiveTensors);
        }

        var stats = context.GetMemoryStats();
        Assert.Equal((0L, 0L, 0L), (stats.LiveTensors, stats.LiveAllocations, stats.LiveBytes));
    }

    [Fact]
    public void FailedFactoriesLeakNothing()
    {
        using var context = Context.Create();
        using var tensor = Tensor.Create(context, Dtype.F32, 4);

        Assert.Throws<NativeEngineException>(() => Tensor.Create(context, Dtype.F32, 0));
        Assert.Throws<NativeEngineException>(() => Tensor.FromArray<float>(context, [1f], 2));
        Assert.Throws<NativeEngineException>(() => tensor.View(0, [5]));
        using var strided = tensor.View(0, [2, 2], [1, 2]);
        Assert.Throws<NativeEngineException>(() => Ops.Quantize(strided));

        var stats = context.GetMemoryStats();
        Assert.Equal((2L, 1L, 16L), (stats.LiveTensors, stats.LiveAllocations, stats.LiveBytes));
    }
}

/// <summary>The library-wide counters are shared by every test, so these run alone.</summary>
[Collection(GlobalStateCollection.Name)]
public sealed class GlobalDisposalTests
{
    [Fact]
    public void DisposingAContextReleasesIt()
    {
        SettleFinalizers();
        var before = Engine.GetMemoryStats();

        var context = Context.Create();
        Assert.Equal(before.LiveContexts + 1, Engine.GetMemoryStats().LiveContexts);
        context.Dispose();

        var after = Engine.GetMemoryStats();
        Assert.Equal(before.LiveContexts, after.LiveContexts);
        Assert.Equal(before.LiveTensors, after.LiveTensors);
        Assert.Equal(before.LiveBytes, after.LiveBytes);
    }

    [Fact]
    public void AContextLivesUntilItsLastTensorIsDisposed()
    {
        SettleFinalizers();
        var before = Engine.GetMemoryStats();

        var context = Context.Create();
        var tensor = Tensor.Create(context, Dtype.I32, 1024);
        context.Dispose();
        var middle = Engine.GetMemoryStats();
        Assert.Equal(before.LiveContexts + 1, middle.LiveContexts);
        Assert.Equal(before.LiveBytes + 4096, middle.LiveBytes);
        tensor.Dispose();

        var after = Engine.GetMemoryStats();
        Assert.Equal((before.LiveContexts, before.LiveTensors, before.LiveAllocations, before.LiveBytes),
            (after.LiveContexts, after.LiveTensors, after.LiveAllocations, after.LiveBytes));
    }

    // Objects other tests forgot to dispose would be released by finalizers at any moment; let
    // that happen before counting.
    private static void SettleFinalizers()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
