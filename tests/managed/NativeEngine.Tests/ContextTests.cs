namespace NativeEngine.Tests;

public sealed class ContextTests
{
    [Fact]
    public void DefaultContextIsCpuWithEveryHardwareThreadAndTheBestSimdLevel()
    {
        var system = Engine.GetSystemInfo();
        using var context = Context.Create();

        Assert.Equal(Backend.Cpu, context.Backend);
        Assert.Equal(0, context.DeviceIndex);
        Assert.Equal(system.HardwareThreads, context.NumThreads);
        Assert.Equal(system.BestSimdLevel, context.SimdLevel);
        Assert.NotEqual(SimdLevel.Auto, context.SimdLevel);
        Assert.False(string.IsNullOrWhiteSpace(context.DeviceName));
        Assert.Equal(0, context.ComputeCapability);
        Assert.Equal(0, context.MultiprocessorCount);
        Assert.Equal(0, context.L2CacheBytes);
        Assert.Equal(0, context.MemoryBytes);
    }

    [Fact]
    public void ACudaContextDescribesItsDevice()
    {
        var system = Engine.GetSystemInfo();
        if (!system.CudaCompiled || system.CudaDeviceCount == 0)
        {
            Assert.Skip("No CUDA device.");
        }

        using var context = Context.Create(new ContextOptions { Backend = Backend.Cuda });

        Assert.Equal(Backend.Cuda, context.Backend);
        Assert.False(string.IsNullOrWhiteSpace(context.DeviceName));
        Assert.True(context.ComputeCapability >= 80, $"compute capability {context.ComputeCapability}");
        Assert.True(context.MultiprocessorCount > 0);
        Assert.True(context.L2CacheBytes > 0);
        Assert.True(context.MemoryBytes > context.L2CacheBytes);
    }

    [Fact]
    public void ACpuContextNeverWaitsAndDefersNoCheck()
    {
        using var context = Context.Create(new ContextOptions { Backend = Backend.Cpu });
        using var ids = Tensor.FromArray<int>(context, [0, 5], 2);
        using var table = Tensor.Create(context, Dtype.F32, 4, 3);
        using var rows = Tensor.Create(context, Dtype.F32, 2, 3);

        var error = Assert.Throws<NativeEngineException>(() => Ops.EmbeddingForward(context, table, ids, rows));
        Assert.Contains("element 1 is 5", error.Message);
        context.Synchronize();
        Assert.Equal(new ContextActivity(0, 0), context.GetActivity());
    }

    [Fact]
    public void OptionsAreApplied()
    {
        using var context = Context.Create(new ContextOptions { NumThreads = 1, SimdLevel = SimdLevel.Scalar });

        Assert.Equal(1, context.NumThreads);
        Assert.Equal(SimdLevel.Scalar, context.SimdLevel);
    }

    [Fact]
    public void SystemInfoDescribesThisBuild()
    {
        var system = Engine.GetSystemInfo();

        Assert.Equal(NativeConstants.AbiVersion, system.AbiVersion);
        Assert.Equal(NativeConstants.AbiVersion, Engine.AbiVersion);
        Assert.Matches(@"^\d+\.\d+\.\d+$", system.Version);
        Assert.True(system.HardwareThreads >= 1);
        Assert.NotEqual(SimdLevel.Auto, system.BestSimdLevel);
        Assert.True(system.CudaDeviceCount >= 0);
        Assert.True(system.CudaCompiled || system.CudaDeviceCount == 0);
        Assert.True(File.Exists(Engine.LibraryPath), Engine.LibraryPath);
    }

    [Fact]
    public void CudaWithoutTheCudaBackendIsBackendUnavailable()
    {
        if (Engine.GetSystemInfo().CudaCompiled)
        {
            Assert.Skip("This library has the CUDA backend.");
        }

        var e = Assert.Throws<NativeEngineException>(() => Context.Create(new ContextOptions { Backend = Backend.Cuda }));

        Assert.Equal(Status.BackendUnavailable, e.Status);
        Assert.StartsWith("ne_context_create:", e.NativeMessage);
    }

    [Fact]
    public void InvalidOptionsAreRefusedByTheLibraryNamingTheField()
    {
        var threads = Assert.Throws<NativeEngineException>(() => Context.Create(new ContextOptions { NumThreads = -1 }));
        Assert.Equal(Status.InvalidArgument, threads.Status);
        Assert.Contains("num_threads", threads.Message);

        var device = Assert.Throws<NativeEngineException>(() => Context.Create(new ContextOptions { DeviceIndex = 1 }));
        Assert.Equal(Status.InvalidArgument, device.Status);
        Assert.Contains("device_index", device.Message);

        var simd = Assert.Throws<NativeEngineException>(() => Context.Create(new ContextOptions { SimdLevel = (SimdLevel)99 }));
        Assert.Equal(Status.InvalidArgument, simd.Status);
    }

    [Fact]
    public void ASimdLevelAboveTheCpusBestIsUnsupported()
    {
        var best = Engine.GetSystemInfo().BestSimdLevel;
        if (best == SimdLevel.Avx512)
        {
            Assert.Skip("This CPU supports every SIMD level.");
        }

        var e = Assert.Throws<NativeEngineException>(() => Context.Create(new ContextOptions { SimdLevel = best + 1 }));

        Assert.Equal(Status.Unsupported, e.Status);
    }

    [Fact]
    public void UseAfterDisposeThrowsObjectDisposedAndDisposeIsIdempotent()
    {
        var context = Context.Create();
        context.Dispose();
        context.Dispose();

        Assert.True(context.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => context.NumThreads);
        Assert.Throws<ObjectDisposedException>(() => context.GetMemoryStats());
        Assert.Throws<ObjectDisposedException>(() => context.Synchronize());
        Assert.Throws<ObjectDisposedException>(() => context.GetActivity());
        Assert.Throws<ObjectDisposedException>(() => Tensor.Create(context, Dtype.F32, 2));
        Assert.Equal("Context(disposed)", context.ToString());
    }

    [Fact]
    public void SynchronizeOnTheCpuReturns()
    {
        using var context = Context.Create();
        context.Synchronize();
    }

    [Fact]
    public void StatusNamesComeFromTheLibrary()
    {
        Assert.Equal("NE_STATUS_SHAPE_MISMATCH", Engine.GetStatusName(Status.ShapeMismatch));
        Assert.Equal("NE_STATUS_OK", Engine.GetStatusName(Status.Ok));
        Assert.Equal("NE_STATUS_UNKNOWN", Engine.GetStatusName((Status)12345));
    }
}
