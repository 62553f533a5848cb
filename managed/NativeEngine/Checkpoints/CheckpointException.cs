namespace NativeEngine.Checkpoints;

/// <summary>
/// A checkpoint file or directory cannot be read or written as asked: it is truncated, corrupt,
/// not in the expected format, or does not match what the caller loads it into.
/// <see cref="Exception.Message"/> is one line, <c>"&lt;path&gt;: &lt;problem&gt;"</c>, naming the file
/// and the problem (such as <c>"/runs/a/model.safetensors: checksum mismatch: ..."</c>).
/// </summary>
/// <remarks>
/// Loading throws it before anything is read into the caller's tensors where the problem can be
/// found by validation (truncation, header, offsets, checksums); a problem found while copying
/// (a tensor missing or of another shape) leaves the tensors loaded before it as they are. Errors of
/// the operating system that are not about the checkpoint's content (permissions, a full disk)
/// are reported with the usual <see cref="IOException"/> and <see cref="UnauthorizedAccessException"/>.
/// </remarks>
public sealed class CheckpointException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The file or directory concerned.</param>
    /// <param name="problem">What is wrong with it, one line, without the path.</param>
    /// <param name="innerException">The exception that revealed the problem, if any.</param>
    public CheckpointException(string path, string problem, Exception? innerException = null)
        : base($"{path}: {problem}", innerException)
    {
        Path = path ?? "";
        Problem = problem ?? "";
    }

    /// <summary>The file or directory concerned.</summary>
    public string Path { get; }

    /// <summary>What is wrong, without the path.</summary>
    public string Problem { get; }
}
