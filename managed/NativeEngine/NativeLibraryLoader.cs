using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using NativeEngine.Interop;

namespace NativeEngine;

/// <summary>
/// Finds and loads the native library once, checks its ABI version, and hands the loaded handle to
/// every <c>[LibraryImport("nativeengine")]</c> of this assembly through a DllImport resolver.
/// </summary>
/// <remarks>
/// When <c>NE_NATIVE_PATH</c> is set (to the library file, or a folder that contains it), that is the only
/// place tried: a mistyped path fails loudly instead of loading some other copy of the library.
/// Otherwise the search order is (the first that loads wins):
/// <list type="number">
/// <item><description><c>&lt;AppContext.BaseDirectory&gt;/runtimes/&lt;rid&gt;/native/</c> (where the NuGet package and
/// project references put it), for the portable RID and, if different, the runtime's own RID;</description></item>
/// <item><description><c>AppContext.BaseDirectory</c>;</description></item>
/// <item><description>the runtime's default probing for <c>nativeengine</c> (deps.json native assets, the system
/// search path).</description></item>
/// </list>
/// When none loads, <see cref="NativeEngineLoadException"/> lists every location with the loader's
/// error. A library whose <c>ne_abi_version()</c> differs from <see cref="NativeConstants.AbiVersion"/>
/// is unloaded and refused with <see cref="NativeEngineLoadException"/>.
/// </remarks>
internal static class NativeLibraryLoader
{
    /// <summary>The environment variable that points at the library or its folder.</summary>
    internal const string PathVariable = "NE_NATIVE_PATH";

    private static readonly Lock s_lock = new();
    private static nint s_handle;
    private static string? s_path;

    static NativeLibraryLoader()
    {
        // Registered once per assembly, before any P/Invoke of this assembly can run: every public
        // entry point calls EnsureLoaded first, which runs this constructor.
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLoader).Assembly, Resolve);
    }

    /// <summary>The file name of the library on this operating system.</summary>
    internal static string LibraryFileName { get; } =
        OperatingSystem.IsWindows() ? "nativeengine.dll"
        : OperatingSystem.IsMacOS() ? "libnativeengine.dylib"
        : "libnativeengine.so";

    /// <summary>The portable runtime identifier of this process, such as <c>linux-x64</c>.</summary>
    internal static string PortableRuntimeIdentifier { get; } = ComputePortableRid();

    /// <summary>The path of the loaded library, or <see langword="null"/> before it loaded.</summary>
    internal static string? LoadedPath => Volatile.Read(ref s_path);

    /// <summary>Loads the library if it is not loaded yet; throws <see cref="NativeEngineLoadException"/>
    /// if it cannot. A failed attempt is not cached: the next call searches again.</summary>
    internal static void EnsureLoaded()
    {
        if (Volatile.Read(ref s_handle) != 0)
        {
            return;
        }
        lock (s_lock)
        {
            if (s_handle != 0)
            {
                return;
            }
            var (handle, path) = Load(
                Environment.GetEnvironmentVariable(PathVariable), AppContext.BaseDirectory, includeDefaultProbing: true);
            Volatile.Write(ref s_path, path);
            Volatile.Write(ref s_handle, handle);
        }
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName != NativeMethods.LibraryName)
        {
            return 0;
        }
        EnsureLoaded();
        return s_handle;
    }

    /// <summary>A place to look for the library: a file path, or (Path null) the runtime's default probing.</summary>
    internal readonly record struct Candidate(string? Path, string Source)
    {
        /// <summary>How the candidate is shown in messages.</summary>
        public string Display => Path ?? $"'{NativeMethods.LibraryName}'";
    }

    /// <summary>The candidates, in search order, for the given <c>NE_NATIVE_PATH</c> value and base directory.</summary>
    internal static List<Candidate> GetCandidates(string? nativePathSetting, string baseDirectory, bool includeDefaultProbing)
    {
        var candidates = new List<Candidate>();
        void Add(string path, string source)
        {
            var full = System.IO.Path.GetFullPath(path);
            if (!candidates.Exists(c => c.Path == full))
            {
                candidates.Add(new Candidate(full, source));
            }
        }

        if (!string.IsNullOrWhiteSpace(nativePathSetting))
        {
            Add(Directory.Exists(nativePathSetting)
                    ? System.IO.Path.Combine(nativePathSetting, LibraryFileName)
                    : nativePathSetting,
                PathVariable);
            return candidates;
        }
        if (!string.IsNullOrEmpty(baseDirectory))
        {
            foreach (var rid in new[] { PortableRuntimeIdentifier, RuntimeInformation.RuntimeIdentifier })
            {
                Add(System.IO.Path.Combine(baseDirectory, "runtimes", rid, "native", LibraryFileName), "application runtimes folder");
            }
            Add(System.IO.Path.Combine(baseDirectory, LibraryFileName), "application folder");
        }
        if (includeDefaultProbing)
        {
            candidates.Add(new Candidate(null, "the runtime's default probing"));
        }
        return candidates;
    }

    /// <summary>
    /// Tries the candidates in order and returns the first library that loads and has the expected
    /// ABI version, with its path. Testable: it touches no static state.
    /// </summary>
    /// <exception cref="NativeEngineLoadException">No candidate loads (the message lists each with its
    /// error), or the first one that loads has another ABI version.</exception>
    internal static (nint Handle, string Path) Load(string? nativePathSetting, string baseDirectory, bool includeDefaultProbing)
    {
        var candidates = GetCandidates(nativePathSetting, baseDirectory, includeDefaultProbing);
        var errors = new List<string>(candidates.Count);
        foreach (var candidate in candidates)
        {
            if (!TryLoad(candidate, out var handle, out var loadedPath, out var error))
            {
                errors.Add(error);
                continue;
            }
            CheckAbiVersion(handle, loadedPath);
            return (handle, loadedPath);
        }

        var message = new StringBuilder();
        message.Append("Could not load the NativeEngine native library (").Append(LibraryFileName)
            .Append(" for ").Append(PortableRuntimeIdentifier).Append("). Tried, in order:");
        for (var i = 0; i < candidates.Count; i++)
        {
            message.AppendLine().Append("  ").Append(i + 1).Append(". ").Append(candidates[i].Display)
                .Append(" (").Append(candidates[i].Source).Append("): ").Append(errors[i]);
        }
        message.AppendLine().Append(string.IsNullOrWhiteSpace(nativePathSetting)
            ? $"Set {PathVariable} to the library file or the folder that contains it, or reference the NativeEngine package, which ships it in runtimes/<rid>/native/."
            : $"{PathVariable} is set, so no other location was searched: correct it, or unset it to search the application's folders.");
        throw new NativeEngineLoadException(message.ToString(), candidates.ConvertAll(c => c.Display));
    }

    private static bool TryLoad(Candidate candidate, out nint handle, out string loadedPath, out string error)
    {
        handle = 0;
        loadedPath = candidate.Path ?? NativeMethods.LibraryName;
        error = "";
        try
        {
            if (candidate.Path is null)
            {
                handle = NativeLibrary.Load(NativeMethods.LibraryName, typeof(NativeLibraryLoader).Assembly, searchPath: null);
                loadedPath = LoadedModulePath(handle) ?? NativeMethods.LibraryName;
                return true;
            }
            if (!File.Exists(candidate.Path))
            {
                error = Directory.Exists(candidate.Path) ? "is a folder, not a file" : "file not found";
                return false;
            }
            handle = NativeLibrary.Load(candidate.Path);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            error = CleanLoaderMessage(e.Message);
            return false;
        }
    }

    private static unsafe void CheckAbiVersion(nint handle, string path)
    {
        if (!NativeLibrary.TryGetExport(handle, "ne_abi_version", out var export))
        {
            NativeLibrary.Free(handle);
            throw new NativeEngineLoadException(
                $"{path} does not export ne_abi_version: it is not a NativeEngine library.", [path]);
        }
        var version = ((delegate* unmanaged<uint>)export)();
        if (version != NativeConstants.AbiVersion)
        {
            NativeLibrary.Free(handle);
            throw new NativeEngineLoadException(
                $"NativeEngine ABI mismatch: {path} has ABI version {version}, but this NativeEngine assembly " +
                $"was built for ABI version {NativeConstants.AbiVersion}. Use the native library and the managed " +
                "assembly of the same build.", [path]);
        }
    }

    // The runtime prefixes the loader's own errors with advice on strace and LD_DEBUG; keep the
    // errors, one line.
    internal static string CleanLoaderMessage(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var kept = lines.Length > 1 && lines[0].StartsWith("Unable to load", StringComparison.Ordinal) ? lines[1..] : lines;
        return kept.Length == 0 ? "the loader gave no reason" : string.Join("; ", kept);
    }

    // Where the default probing found the library: the module of the loaded ne_abi_version.
    private static string? LoadedModulePath(nint handle)
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryGetExport(handle, "ne_abi_version", out var export))
        {
            return null;
        }
        try
        {
            var address = (ulong)export;
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                // "start-end perms offset dev inode path"
                var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length < 6)
                {
                    continue;
                }
                var range = parts[0].Split('-');
                if (range.Length == 2
                    && ulong.TryParse(range[0], System.Globalization.NumberStyles.HexNumber, null, out var start)
                    && ulong.TryParse(range[1], System.Globalization.NumberStyles.HexNumber, null, out var end)
                    && address >= start && address < end)
                {
                    return parts[5].Trim();
                }
            }
        }
        catch (IOException)
        {
        }
        return null;
    }

    private static string ComputePortableRid()
    {
        var os = OperatingSystem.IsWindows() ? "win"
            : OperatingSystem.IsMacOS() ? "osx"
            : OperatingSystem.IsLinux() && RuntimeInformation.RuntimeIdentifier.Contains("musl", StringComparison.OrdinalIgnoreCase) ? "linux-musl"
            : OperatingSystem.IsLinux() ? "linux"
            : OperatingSystem.IsFreeBSD() ? "freebsd"
            : "unknown";
        return $"{os}-{RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}";
    }
}
