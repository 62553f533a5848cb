using NativeEngine.Interop;

namespace NativeEngine;

/// <summary>
/// A NativeEngine context: a backend instance (CPU or a CUDA device) that owns the memory and
/// threads that tensors and kernels use. Wraps one native <c>ne_context</c>.
/// </summary>
/// <remarks>
/// <para>Ownership: <see cref="Create"/> returns a context that the caller owns and must dispose.
/// Disposing releases the caller's reference. Tensors of the context keep its native memory alive
/// until they are disposed too, so the two may be disposed in any order; but once the context is
/// disposed, operations that need it (kernels, creating tensors) throw
/// <see cref="ObjectDisposedException"/>. A context that is never disposed is released by its
/// safe handle's finalizer, at a time the garbage collector picks: always dispose it.</para>
/// <para>Threading: a context, and the tensors of a context, must be used from one thread at a
/// time. <see cref="Dispose"/> may be called from any thread, once no call is using the context.</para>
/// </remarks>
public sealed class Context : IDisposable
{
    private readonly ContextHandle _handle;
    private readonly Backend _backend;
    private readonly int _deviceIndex;
    private readonly int _numThreads;
    private readonly SimdLevel _simdLevel;
    private readonly string _deviceName;
    private readonly int _computeCapability;
    private readonly int _multiprocessorCount;
    private readonly long _l2CacheBytes;
    private readonly long _memoryBytes;
    private int _disposed;

    private Context(ContextHandle handle, in NeContextInfo info, string deviceName)
    {
        _handle = handle;
        _backend = info.Backend;
        _deviceIndex = info.DeviceIndex;
        _numThreads = info.NumThreads;
        _simdLevel = info.SimdLevel;
        _deviceName = deviceName;
        _computeCapability = info.ComputeCapability;
        _multiprocessorCount = info.MultiprocessorCount;
        _l2CacheBytes = info.L2CacheBytes;
        _memoryBytes = info.MemoryBytes;
    }

    /// <summary>Creates a context.</summary>
    /// <param name="options">Backend, device, threads and SIMD level; <see langword="null"/> for the
    /// defaults (CPU, every hardware thread, the best SIMD level). The <c>NE_BACKEND</c> environment
    /// variable, when set, replaces the backend and device index (<see cref="BackendSetting"/>).</param>
    /// <returns>A new context. Ownership: the caller owns it and must dispose it. Its
    /// <see cref="Backend"/> is the one it got: <see cref="NativeEngine.Backend.Cpu"/> or
    /// <see cref="NativeEngine.Backend.Cuda"/>, never <see cref="NativeEngine.Backend.Auto"/>.</returns>
    /// <remarks>The first context of a process (or the first call into <see cref="Engine"/>) picks
    /// the native library that serves the whole process: see <see cref="Engine.EnsureLoaded"/>. A
    /// CUDA context after a CPU one therefore needs the CUDA library to have been picked: create the
    /// CUDA (or an <see cref="NativeEngine.Backend.Auto"/>) context first, or set <c>NE_BACKEND</c>.</remarks>
    /// <exception cref="InvalidOperationException"><c>NE_BACKEND</c> has a value other than
    /// <see cref="BackendSetting.AcceptedValues"/>.</exception>
    /// <exception cref="NativeEngineLoadException">The native library cannot be loaded.</exception>
    /// <exception cref="NativeEngineException">The native library refused the options, such as
    /// <see cref="Status.BackendUnavailable"/> for CUDA where the CUDA library, cuBLAS, the driver
    /// or a device is missing (the message says which), or <see cref="Status.Unsupported"/> for a
    /// SIMD level this CPU lacks.</exception>
    public static unsafe Context Create(ContextOptions? options = null)
    {
        options = BackendSetting.ApplyEnvironment(options ?? new ContextOptions());
        NativeLibraryLoader.EnsureLoaded(NativeLibraryLoader.PreferenceFor(options.Backend),
            $"a {BackendSetting.Format(options.Backend, options.DeviceIndex)} context");
        var native = new NeContextOptions
        {
            StructSize = (uint)sizeof(NeContextOptions),
            Backend = options.Backend,
            DeviceIndex = options.DeviceIndex,
            NumThreads = options.NumThreads,
            SimdLevel = options.SimdLevel,
        };
        var status = NativeMethods.ne_context_create(&native, out var handle);
        try
        {
            CheckCreated(status, options.Backend);
            var info = new NeContextInfo { StructSize = (uint)sizeof(NeContextInfo) };
            NativeStatus.Check(NativeMethods.ne_context_get_info(handle, &info));
            return new Context(handle, info, NativeStatus.FixedString(info.DeviceName, 128));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    // A CUDA context refused by the CPU library: the native message says which library has CUDA;
    // add why this process loaded the other one.
    private static void CheckCreated(Status status, Backend backend)
    {
        try
        {
            NativeStatus.Check(status);
        }
        catch (NativeEngineException e) when (e.Status == Status.BackendUnavailable && backend == Backend.Cuda
                                               && NativeLibraryLoader.Loaded is { HasCuda: false } loaded)
        {
            throw new NativeEngineException(e.Status,
                $"{e.NativeMessage}. This process loaded {loaded.Path} ({loaded.Selection}); one native library serves a " +
                $"process, picked at its first load: for CUDA, create the first context with the Cuda or Auto backend, or set " +
                $"{BackendSetting.EnvironmentVariable}=cuda (or auto), with {NativeLibraryLoader.CudaLibraryFileName} beside " +
                $"{NativeLibraryLoader.LibraryFileName} or at {NativeLibraryLoader.PathVariable}.");
        }
    }

    /// <summary>The backend the context runs on.</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public Backend Backend => Alive(_backend);

    /// <summary>The device ordinal (0 on the CPU).</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public int DeviceIndex => Alive(_deviceIndex);

    /// <summary>CPU threads the kernels use, the calling thread included.</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public int NumThreads => Alive(_numThreads);

    /// <summary>The SIMD level the CPU kernels of this context use (never <see cref="SimdLevel.Auto"/>).</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public SimdLevel SimdLevel => Alive(_simdLevel);

    /// <summary>A human-readable device name: the CPU model, or the CUDA device name.</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public string DeviceName => Alive(_deviceName);

    /// <summary>The CUDA device's compute capability as major * 10 + minor (90 on an H100); 0 on the CPU.</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public int ComputeCapability => Alive(_computeCapability);

    /// <summary>The CUDA device's streaming multiprocessors; 0 on the CPU.</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public int MultiprocessorCount => Alive(_multiprocessorCount);

    /// <summary>Bytes of the CUDA device's L2 cache; 0 on the CPU.</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public long L2CacheBytes => Alive(_l2CacheBytes);

    /// <summary>Bytes of the CUDA device's global memory; 0 on the CPU.</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public long MemoryBytes => Alive(_memoryBytes);

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The native handle, for the calls of this assembly.</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    internal ContextHandle Handle => Alive(_handle);

    /// <summary>Live object counts of this context: its tensors (views included) and allocations.</summary>
    /// <returns>A snapshot; <see cref="MemoryStats.LiveContexts"/> is 0.</returns>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    /// <exception cref="NativeEngineException">The native call failed.</exception>
    public unsafe MemoryStats GetMemoryStats()
    {
        var stats = new NeMemoryStats { StructSize = (uint)sizeof(NeMemoryStats) };
        NativeStatus.Check(NativeMethods.ne_context_get_memory_stats(Handle, &stats));
        return MemoryStats.From(stats);
    }

    /// <summary>The context's count of host waits and of checks not yet reported.</summary>
    /// <returns>A snapshot.</returns>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    /// <exception cref="NativeEngineException">The native call failed.</exception>
    public unsafe ContextActivity GetActivity()
    {
        var activity = new NeContextActivity { StructSize = (uint)sizeof(NeContextActivity) };
        NativeStatus.Check(NativeMethods.ne_context_get_activity(Handle, &activity));
        return new ContextActivity(activity.HostWaits, activity.PendingChecks);
    }

    /// <summary>Waits until all work queued on the context has finished (a no-op on the CPU backend,
    /// whose kernels return when they are done).</summary>
    /// <remarks>On a device backend, values that operations validate but that live in device memory (ids, class
    /// targets, inputs to quantize, key lengths) are checked by the device while the host goes on; this call, and any
    /// other that waits for the device (reading a tensor), then throws for the first failed check, naming the
    /// operation that queued it. On the CPU the operation itself throws.</remarks>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    /// <exception cref="NativeEngineException">The device reported an error, or a check of device data failed.</exception>
    public void Synchronize() => NativeStatus.Check(NativeMethods.ne_context_synchronize(Handle));

    /// <summary>Releases the caller's reference to the native context. Tensors still alive keep its
    /// memory until they are disposed. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _handle.Dispose();
        }
    }

    /// <summary>Describes the context, such as <c>Context(Cpu, AVX512, 16 threads, "Intel Xeon ...")</c>.</summary>
    /// <returns>The description.</returns>
    public override string ToString() =>
        IsDisposed ? "Context(disposed)" : $"Context({_backend}, {_simdLevel}, {_numThreads} threads, \"{_deviceName}\")";

    private T Alive<T>(T value)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return value;
    }
}
