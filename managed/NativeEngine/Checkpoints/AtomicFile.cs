using System.Text;

namespace NativeEngine.Checkpoints;

/// <summary>
/// Writes a file so that a reader sees either the old file or the complete new one, never a part:
/// the content goes to a temporary file in the same folder (<c>.&lt;name&gt;.&lt;random&gt;.tmp</c>),
/// is flushed to the disk, and is then renamed over the target.
/// </summary>
/// <remarks>
/// <para>If writing fails (an exception, a cancellation), the temporary file is deleted and the
/// target is left as it was. If the process is killed while writing, the target is intact and a
/// temporary file may remain (its name starts with a dot and ends in <c>.tmp</c>).</para>
/// <para>The rename replaces the target atomically on POSIX file systems and on NTFS. The folder
/// entry itself is not flushed (.NET has no call for it), so after a power loss the folder may still
/// show the old file, complete.</para>
/// <para>The folder must exist. The new file gets the default permissions of a new file, not those of
/// the file it replaces.</para>
/// </remarks>
public static class AtomicFile
{
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Writes <paramref name="path"/> atomically with <paramref name="write"/>.</summary>
    /// <param name="path">The target file; replaced if it exists.</param>
    /// <param name="write">Writes the content into the temporary file's stream (readable, writable,
    /// seekable, positioned at 0). It must not dispose the stream.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty or names a folder.</exception>
    /// <exception cref="DirectoryNotFoundException">The target's folder does not exist.</exception>
    /// <exception cref="IOException">The file system failed.</exception>
    public static void Write(string path, Action<FileStream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var target = TargetPath(path);
        var temporary = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(target)!,
            $".{System.IO.Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, target, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically.</summary>
    /// <param name="path">The target file; replaced if it exists.</param>
    /// <param name="bytes">The content.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty or names a folder.</exception>
    /// <exception cref="DirectoryNotFoundException">The target's folder does not exist.</exception>
    /// <exception cref="IOException">The file system failed.</exception>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        // A span cannot be captured by the callback: copy it once.
        var content = bytes.ToArray();
        Write(path, stream => stream.Write(content));
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> atomically, as UTF-8 without
    /// a byte order mark.</summary>
    /// <param name="path">The target file; replaced if it exists.</param>
    /// <param name="text">The content.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty or names a folder.</exception>
    /// <exception cref="DirectoryNotFoundException">The target's folder does not exist.</exception>
    /// <exception cref="IOException">The file system failed.</exception>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        WriteAllBytes(path, s_utf8.GetBytes(text));
    }

    private static string TargetPath(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var target = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(target))
        {
            throw new ArgumentException($"'{target}' is a folder, not a file.", nameof(path));
        }
        var folder = System.IO.Path.GetDirectoryName(target)
            ?? throw new ArgumentException($"'{target}' names no file.", nameof(path));
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"Cannot write '{target}': the folder '{folder}' does not exist.");
        }
        return target;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
