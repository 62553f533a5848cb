namespace NativeEngine;

/// <summary>Options of <see cref="Context.Create"/>. The defaults give a CPU context that uses
/// every hardware thread and the best SIMD level of this CPU.</summary>
public sealed record ContextOptions
{
    /// <summary>Where the context runs its kernels and keeps its memory. Default: <see cref="Backend.Cpu"/>.</summary>
    public Backend Backend { get; init; } = Backend.Cpu;

    /// <summary>Device ordinal for CUDA; must be 0 for the CPU. Default: 0.</summary>
    public int DeviceIndex { get; init; }

    /// <summary>CPU threads the kernels use, the calling thread included; 0 (the default) means
    /// every hardware thread.</summary>
    public int NumThreads { get; init; }

    /// <summary>SIMD level of the CPU kernels. <see cref="SimdLevel.Auto"/> (the default) picks
    /// the best this CPU supports; a level the CPU lacks is refused with
    /// <see cref="Status.Unsupported"/>.</summary>
    public SimdLevel SimdLevel { get; init; } = SimdLevel.Auto;
}
