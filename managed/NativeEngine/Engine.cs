using NativeEngine.Interop;

namespace NativeEngine;

/// <summary>
/// Library-wide entry points: loading the native library, what this build and machine offer,
/// and library-wide memory statistics.
/// </summary>
public static class Engine
{
    /// <summary>
    /// Loads the native library now, if it is not loaded yet, so that a missing or mismatched
    /// library is reported here with a clear message rather than at the first native call.
    /// <see cref="Context.Create"/> and every member of this class call it, so calling it is
    /// optional.
    /// </summary>
    /// <remarks>
    /// <para>Two native libraries export the same functions: <c>libnativeengine</c> (CPU) and
    /// <c>libnativeengine_cuda</c> (CPU and CUDA). The first load of the process picks one, for good:
    /// for a CPU context, the CPU library first; for a CUDA context, only the CUDA library; for an
    /// <see cref="Backend.Auto"/> context, or a first call that is not a context (this method and
    /// the other members of this class), the CUDA library first where the NVIDIA driver loads,
    /// then the CPU library, unless <c>NE_BACKEND=cpu</c>. <see cref="SystemInfo.LibrarySelection"/>
    /// tells which was picked and why.</para>
    /// <para>Search: where the <c>NE_NATIVE_PATH</c> environment variable is set, only there (the
    /// library file, which is loaded whichever backend is wanted, or a folder holding either
    /// library); otherwise <c>&lt;AppContext.BaseDirectory&gt;/runtimes/&lt;rid&gt;/native/</c>,
    /// <c>AppContext.BaseDirectory</c>, then the runtime's default probing, for each library in
    /// turn. The library that loads must report <see cref="NativeConstants.AbiVersion"/> from
    /// <c>ne_abi_version()</c>. A failure is not remembered: a later call searches again.</para>
    /// </remarks>
    /// <exception cref="NativeEngineLoadException">No location held a loadable library (the message
    /// lists every location tried, with the loader's error for each), or the library has another
    /// ABI version.</exception>
    public static void EnsureLoaded() => NativeLibraryLoader.EnsureLoaded();

    /// <summary>The full path of the loaded native library.</summary>
    /// <exception cref="NativeEngineLoadException">The library cannot be loaded.</exception>
    public static string LibraryPath
    {
        get
        {
            EnsureLoaded();
            return NativeLibraryLoader.LoadedPath!;
        }
    }

    /// <summary>The ABI version of the loaded native library (equal to <see cref="NativeConstants.AbiVersion"/>,
    /// which loading checks).</summary>
    /// <exception cref="NativeEngineLoadException">The library cannot be loaded.</exception>
    public static int AbiVersion
    {
        get
        {
            EnsureLoaded();
            return (int)NativeMethods.ne_abi_version();
        }
    }

    /// <summary>Describes this library build and machine.</summary>
    /// <returns>A snapshot; it owns no native resources.</returns>
    /// <exception cref="NativeEngineLoadException">The library cannot be loaded.</exception>
    /// <exception cref="NativeEngineException">The native call failed.</exception>
    public static unsafe SystemInfo GetSystemInfo()
    {
        EnsureLoaded();
        var info = new NeSystemInfo { StructSize = (uint)sizeof(NeSystemInfo) };
        NativeStatus.Check(NativeMethods.ne_get_system_info(&info));
        return new SystemInfo
        {
            BestSimdLevel = info.BestSimdLevel,
            HardwareThreads = info.HardwareThreads,
            CudaCompiled = info.CudaCompiled != 0,
            CudaDeviceCount = info.CudaDeviceCount,
            Version = NativeStatus.FixedString(info.Version, 32),
            AbiVersion = (int)NativeMethods.ne_abi_version(),
            LibraryPath = NativeLibraryLoader.LoadedPath!,
            LibrarySelection = NativeLibraryLoader.Loaded!.Selection,
        };
    }

    /// <summary>Library-wide live object counts: every context, tensor and allocation of the
    /// process, whoever created them.</summary>
    /// <returns>A snapshot; it owns no native resources.</returns>
    /// <exception cref="NativeEngineLoadException">The library cannot be loaded.</exception>
    /// <exception cref="NativeEngineException">The native call failed.</exception>
    public static unsafe MemoryStats GetMemoryStats()
    {
        EnsureLoaded();
        var stats = new NeMemoryStats { StructSize = (uint)sizeof(NeMemoryStats) };
        NativeStatus.Check(NativeMethods.ne_get_memory_stats(&stats));
        return MemoryStats.From(stats);
    }

    /// <summary>The native library's name for a status code, such as <c>"NE_STATUS_SHAPE_MISMATCH"</c>.</summary>
    /// <param name="status">Any status value.</param>
    /// <returns>The name; <c>"NE_STATUS_UNKNOWN"</c> for a value the library does not know.</returns>
    /// <exception cref="NativeEngineLoadException">The library cannot be loaded.</exception>
    public static string GetStatusName(Status status) => NativeStatus.Name(status);
}
