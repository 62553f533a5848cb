namespace NativeEngine;

/// <summary>Options of <see cref="Context.Create"/>. The defaults give a CPU context that uses
/// every hardware thread and the best SIMD level of this CPU.</summary>
/// <remarks>The backend is a choice of three: <see cref="Backend.Cpu"/>; <see cref="Backend.Cuda"/>
/// on the device <see cref="DeviceIndex"/>; or <see cref="Backend.Auto"/>, CUDA device 0 where the
/// CUDA library, the driver and a device are present and the CPU otherwise. The
/// <c>NE_BACKEND</c> environment variable, when set, replaces <see cref="Backend"/> and
/// <see cref="DeviceIndex"/> (<see cref="BackendSetting"/>).</remarks>
public sealed record ContextOptions
{
    /// <summary>Where the context runs its kernels and keeps its memory. Default: <see cref="Backend.Cpu"/>.</summary>
    public Backend Backend { get; init; } = Backend.Cpu;

    /// <summary>The CUDA device ordinal for <see cref="Backend.Cuda"/>; must be 0 for
    /// <see cref="Backend.Cpu"/> and <see cref="Backend.Auto"/> (which uses device 0). Default: 0.</summary>
    public int DeviceIndex { get; init; }

    /// <summary>CPU threads the kernels use, the calling thread included; 0 (the default) means
    /// every hardware thread. Ignored by a CUDA context.</summary>
    public int NumThreads { get; init; }

    /// <summary>SIMD level of the CPU kernels. <see cref="SimdLevel.Auto"/> (the default) picks
    /// the best this CPU supports; a level the CPU lacks is refused with
    /// <see cref="Status.Unsupported"/>. Ignored by a CUDA context.</summary>
    public SimdLevel SimdLevel { get; init; } = SimdLevel.Auto;

}
