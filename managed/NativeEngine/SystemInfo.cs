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
}
