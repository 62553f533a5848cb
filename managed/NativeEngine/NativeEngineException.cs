namespace NativeEngine;

/// <summary>
/// A NativeEngine call failed: the native library returned a status other than
/// <see cref="Status.Ok"/>. <see cref="Exception.Message"/> is the library's message, which names
/// the function, the argument and the value it expected, followed by the status.
/// </summary>
/// <remarks>
/// Every argument the native library validates (shapes, dtypes, contexts, ranges) is reported
/// through this exception, so the native message is the single source of truth. Errors that
/// only the managed layer can detect (a <see langword="null"/> argument, a disposed object, an
/// element type that does not match a tensor's dtype) are reported with the usual
/// <see cref="ArgumentException"/> and <see cref="ObjectDisposedException"/> instead.
/// </remarks>
public class NativeEngineException : Exception
{
    /// <summary>Creates an exception for a failed native call.</summary>
    /// <param name="status">The status the native call returned (not <see cref="Status.Ok"/>).</param>
    /// <param name="nativeMessage">The native library's message (<c>ne_last_error()</c>); may be empty.</param>
    public NativeEngineException(Status status, string nativeMessage)
        : base(FormatMessage(status, nativeMessage))
    {
        Status = status;
        NativeMessage = nativeMessage ?? "";
    }

    /// <summary>The status code the native call returned.</summary>
    public Status Status { get; }

    /// <summary>The native library's message as it reported it, such as
    /// <c>"ne_tensor_copy: argument 'destination': expected shape [2, 3] (the source's), got [3, 2]"</c>;
    /// empty if the library gave none.</summary>
    public string NativeMessage { get; }

    private static string FormatMessage(Status status, string? nativeMessage) =>
        string.IsNullOrEmpty(nativeMessage)
            ? $"A NativeEngine call failed with status {status}."
            : $"{nativeMessage} (status {status})";
}
