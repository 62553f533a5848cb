using NativeEngine.Interop;

namespace NativeEngine;

/// <summary>Live native object counts, for leak checks and memory reporting: of the whole library
/// (<see cref="Engine.GetMemoryStats"/>) or of one context (<see cref="Context.GetMemoryStats"/>).</summary>
public sealed record MemoryStats
{
    /// <summary>Contexts not yet fully released. Library-wide statistics only; 0 for a context.
    /// A context is fully released once its owner disposed it and its last tensor is gone.</summary>
    public required long LiveContexts { get; init; }

    /// <summary>Tensor handles, views included, not yet destroyed.</summary>
    public required long LiveTensors { get; init; }

    /// <summary>Memory allocations not yet freed (views share their base's allocation).</summary>
    public required long LiveAllocations { get; init; }

    /// <summary>Total size of the live allocations, in bytes.</summary>
    public required long LiveBytes { get; init; }

    /// <summary>The largest <see cref="LiveBytes"/> seen.</summary>
    public required long PeakBytes { get; init; }

    internal static MemoryStats From(in NeMemoryStats stats) => new()
    {
        LiveContexts = stats.LiveContexts,
        LiveTensors = stats.LiveTensors,
        LiveAllocations = stats.LiveAllocations,
        LiveBytes = stats.LiveBytes,
        PeakBytes = stats.PeakBytes,
    };
}
