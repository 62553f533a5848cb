using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using NativeEngine.Interop;

namespace NativeEngine;

/// <summary>Turns native status codes into exceptions: the one place that does.</summary>
internal static class NativeStatus
{
    /// <summary>Returns when <paramref name="status"/> is <see cref="Status.Ok"/>; otherwise reads
    /// the calling thread's <c>ne_last_error()</c> and throws <see cref="NativeEngineException"/>.
    /// Call it right after the native call, on the same thread.</summary>
    [StackTraceHidden]
    internal static void Check(Status status)
    {
        if (status != Status.Ok)
        {
            Throw(status);
        }
    }

    [DoesNotReturn]
    [StackTraceHidden]
    private static unsafe void Throw(Status status)
    {
        // Owned by the library and valid until the next failing call on this thread: copy it now,
        // never free it.
        var message = Marshal.PtrToStringUTF8((nint)NativeMethods.ne_last_error()) ?? "";
        throw new NativeEngineException(status, message);
    }

    /// <summary>The library's name for a status, such as "NE_STATUS_SHAPE_MISMATCH".</summary>
    internal static unsafe string Name(Status status)
    {
        NativeLibraryLoader.EnsureLoaded();
        return Marshal.PtrToStringUTF8((nint)NativeMethods.ne_status_string(status)) ?? status.ToString();
    }

    /// <summary>Decodes a NUL-terminated UTF-8 string from a fixed-size native char array.</summary>
    internal static unsafe string FixedString(byte* chars, int capacity)
    {
        var span = new ReadOnlySpan<byte>(chars, capacity);
        var length = span.IndexOf((byte)0);
        return System.Text.Encoding.UTF8.GetString(length < 0 ? span : span[..length]);
    }
}
