namespace NativeEngine;

/// <summary>What the loaded native library and this machine offer (<see cref="Engine.GetSystemInfo"/>).</summary>
public sealed record SystemInfo
{
    /// <summary>The best SIMD level this CPU and this build support.</summary>
    public required SimdLevel BestSimdLevel { get; init; }

    /// <summary>Logical processors available to this process.</summary>
    public required int HardwareThreads { get; init; }

    /// <summary>Whether the library was built with the CUDA backend.</summary>
    public required bool CudaCompiled { get; init; }

    /// <summary>CUDA devices visible (0 without a driver or without the CUDA backend).</summary>
    public required int CudaDeviceCount { get; init; }

    /// <summary>The native library's version, "major.minor.patch".</summary>
    public required string Version { get; init; }

    /// <summary>The native library's ABI version.</summary>
    public required int AbiVersion { get; init; }

    /// <summary>The full path of the loaded native library (<c>libnativeengine</c> or <c>libnativeengine_cuda</c>).</summary>
    public required string LibraryPath { get; init; }

    /// <summary>Why that library was loaded: what the first load was for, the order of the
    /// libraries it tried, each one passed over with the reason (a missing file, cuBLAS or the
    /// NVIDIA driver), and where the loaded one was found.</summary>
    public required string LibrarySelection { get; init; }
}
