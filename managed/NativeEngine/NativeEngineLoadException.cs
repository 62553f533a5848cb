namespace NativeEngine;

/// <summary>
/// The NativeEngine native library (<c>libnativeengine.so</c>, <c>nativeengine.dll</c>) could not
/// be loaded, or the library that loaded was built for another ABI version than this assembly.
/// </summary>
/// <remarks>
/// The message lists every location that was tried, in order, with the loader's error for each
/// (see <see cref="Engine.EnsureLoaded"/> for the search order). It derives from
/// <see cref="DllNotFoundException"/>, so code that already handles a missing native library
/// keeps working.
/// </remarks>
public sealed class NativeEngineLoadException : DllNotFoundException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What went wrong, with the locations tried and their errors.</param>
    /// <param name="attemptedPaths">The locations tried, in order.</param>
    public NativeEngineLoadException(string message, IReadOnlyList<string> attemptedPaths)
        : base(message)
    {
        ArgumentNullException.ThrowIfNull(attemptedPaths);
        AttemptedPaths = attemptedPaths;
    }

    /// <summary>The locations tried, in order: file paths, and for the runtime's default probing
    /// the library name it was asked for.</summary>
    public IReadOnlyList<string> AttemptedPaths { get; }
}
