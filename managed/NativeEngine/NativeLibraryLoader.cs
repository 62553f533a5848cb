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
/// <para>Two libraries export the same functions: <c>libnativeengine</c> (CPU only) and
/// <c>libnativeengine_cuda</c> (every CPU kernel plus the CUDA backend). One of them serves the
/// whole process, chosen at the first load by the backend that load is for
/// (<see cref="LibraryPreference"/>): a CPU context tries the CPU library first (then the CUDA
/// one, which can run CPU contexts too); <see cref="Backend.Auto"/> tries the CUDA library first
/// and falls back to the CPU one; <see cref="Backend.Cuda"/> tries only the CUDA library. The CUDA
/// library is passed over without loading it when the NVIDIA driver (<c>libcuda.so.1</c>) cannot
/// be loaded, so a machine without a GPU loads exactly the CPU library. A load that serves no
/// context (<see cref="Engine"/>'s members) follows <c>NE_BACKEND</c>, and <see cref="Backend.Auto"/>
/// when that is unset, so that CUDA stays possible where it is present.</para>
/// <para>Where each library is looked for: when <c>NE_NATIVE_PATH</c> is set, only there (a
/// mistyped path fails loudly instead of loading some other copy): naming a file, that file is
/// the one candidate, whichever backend is wanted; naming a folder, the file names above in that
/// folder. Otherwise, for each file name in turn:</para>
/// <list type="number">
/// <item><description><c>&lt;AppContext.BaseDirectory&gt;/runtimes/&lt;rid&gt;/native/</c> (where the NuGet package and
/// project references put it), for the portable RID and, if different, the runtime's own RID;</description></item>
/// <item><description><c>AppContext.BaseDirectory</c>;</description></item>
/// <item><description>the runtime's default probing for the library name (deps.json native
/// assets, the system search path).</description></item>
/// </list>
/// <para>When none loads, <see cref="NativeEngineLoadException"/> lists every location with the
/// loader's error (for <see cref="Backend.Cuda"/>, <see cref="NativeEngineException"/> with
/// <see cref="Status.BackendUnavailable"/>, and nothing is loaded). A library whose
/// <c>ne_abi_version()</c> differs from <see cref="NativeConstants.AbiVersion"/> is unloaded and
/// refused with <see cref="NativeEngineLoadException"/>.</para>
/// </remarks>
internal static class NativeLibraryLoader
{
    /// <summary>The environment variable that points at the library or its folder.</summary>
    internal const string PathVariable = "NE_NATIVE_PATH";

    private static readonly Lock s_lock = new();
    private static nint s_handle;
    private static LoadedLibrary? s_loaded;

    static NativeLibraryLoader()
    {
        // Registered once per assembly, before any P/Invoke of this assembly can run: every public
        // entry point calls EnsureLoaded first, which runs this constructor.
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLoader).Assembly, Resolve);
    }

    /// <summary>Which library a load tries, in which order.</summary>
    internal enum LibraryPreference
    {
        /// <summary>The CPU library, then the CUDA library (for CPU contexts).</summary>
        CpuFirst,
        /// <summary>The CUDA library where the driver is present, then the CPU library (for <see cref="Backend.Auto"/>).</summary>
        CudaFirst,
        /// <summary>Only the CUDA library (for <see cref="Backend.Cuda"/>).</summary>
        CudaOnly,
    }

    /// <summary>The loaded library: its handle, its path, whether it has the CUDA backend, and why it
    /// was chosen.</summary>
    internal sealed record LoadedLibrary(nint Handle, string Path, bool HasCuda, string Selection);

    /// <summary>The file name of the CPU library on this operating system.</summary>
    internal static string LibraryFileName { get; } = FileNameOf("nativeengine");

    /// <summary>The file name of the CUDA library on this operating system.</summary>
    internal static string CudaLibraryFileName { get; } = FileNameOf(CudaLibraryName);

    /// <summary>The CUDA library's name for the runtime's default probing.</summary>
    internal const string CudaLibraryName = "nativeengine_cuda";

    /// <summary>The NVIDIA driver library that the CUDA library needs at run time.</summary>
    internal static string DriverLibraryName { get; } = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";

    /// <summary>The portable runtime identifier of this process, such as <c>linux-x64</c>.</summary>
    internal static string PortableRuntimeIdentifier { get; } = ComputePortableRid();

    /// <summary>The path of the loaded library, or <see langword="null"/> before it loaded.</summary>
    internal static string? LoadedPath => Volatile.Read(ref s_loaded)?.Path;

    /// <summary>The loaded library, or <see langword="null"/> before it loaded.</summary>
    internal static LoadedLibrary? Loaded => Volatile.Read(ref s_loaded);

    /// <summary>The preference of a load for a context of <paramref name="backend"/>.</summary>
    internal static LibraryPreference PreferenceFor(Backend backend) => backend switch
    {
        Backend.Cuda => LibraryPreference.CudaOnly,
        Backend.Auto => LibraryPreference.CudaFirst,
        _ => LibraryPreference.CpuFirst,
    };

    /// <summary>Loads the library if it is not loaded yet, for no context in particular (the
    /// backend of <c>NE_BACKEND</c>, or <see cref="Backend.Auto"/>); throws
    /// <see cref="NativeEngineLoadException"/> if it cannot. A failed attempt is not cached: the
    /// next call searches again.</summary>
    internal static void EnsureLoaded()
    {
        if (Volatile.Read(ref s_handle) != 0)
        {
            return;
        }
        var setting = Environment.GetEnvironmentVariable(BackendSetting.EnvironmentVariable);
        var backend = BackendSetting.EnvironmentBackend(setting);
        // A load that serves no context never insists on CUDA: the CPU library answers every query.
        EnsureLoaded(backend == Backend.Cpu ? LibraryPreference.CpuFirst : LibraryPreference.CudaFirst,
            backend is null ? "the first native call, before any context" : $"the first native call, with {BackendSetting.EnvironmentVariable}={setting!.Trim()}");
    }

    /// <summary>Loads the library if it is not loaded yet, with the given preference; a library
    /// already loaded stays, whatever it is.</summary>
    /// <param name="preference">Which library to try first.</param>
    /// <param name="purpose">What the load is for, as <see cref="LoadedLibrary.Selection"/> tells it.</param>
    /// <exception cref="NativeEngineLoadException">No library loads, or it has another ABI version.</exception>
    /// <exception cref="NativeEngineException"><see cref="LibraryPreference.CudaOnly"/> and the CUDA
    /// library cannot be loaded (<see cref="Status.BackendUnavailable"/>).</exception>
    internal static void EnsureLoaded(LibraryPreference preference, string purpose)
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
            var loaded = Load(Environment.GetEnvironmentVariable(PathVariable), AppContext.BaseDirectory,
                includeDefaultProbing: true, preference, purpose, ProbeDriver);
            Volatile.Write(ref s_loaded, loaded);
            Volatile.Write(ref s_handle, loaded.Handle);
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

    /// <summary>A place to look for a library: a file path, or (Path null) the runtime's default
    /// probing for <see cref="ProbingName"/>. <see cref="Cuda"/>: the CUDA library's file name.</summary>
    internal readonly record struct Candidate(string? Path, string Source, bool Cuda)
    {
        /// <summary>The library name the runtime's default probing looks for.</summary>
        public string ProbingName => Cuda ? CudaLibraryName : NativeMethods.LibraryName;

        /// <summary>How the candidate is shown in messages.</summary>
        public string Display => Path ?? $"'{ProbingName}'";
    }

    /// <summary>The candidates, in search order, for the given <c>NE_NATIVE_PATH</c> value, base
    /// directory and preference.</summary>
    internal static List<Candidate> GetCandidates(string? nativePathSetting, string baseDirectory, bool includeDefaultProbing,
        LibraryPreference preference)
    {
        var candidates = new List<Candidate>();
        void Add(string path, string source, bool cuda)
        {
            var full = System.IO.Path.GetFullPath(path);
            if (!candidates.Exists(c => c.Path == full))
            {
                candidates.Add(new Candidate(full, source, cuda));
            }
        }

        var kinds = preference switch
        {
            LibraryPreference.CudaOnly => new[] { true },
            LibraryPreference.CudaFirst => [true, false],
            _ => [false, true],
        };
        if (!string.IsNullOrWhiteSpace(nativePathSetting))
        {
            if (!Directory.Exists(nativePathSetting))
            {
                Add(nativePathSetting, PathVariable, System.IO.Path.GetFileName(nativePathSetting) == CudaLibraryFileName);
                return candidates;
            }
            foreach (var cuda in kinds)
            {
                Add(System.IO.Path.Combine(nativePathSetting, cuda ? CudaLibraryFileName : LibraryFileName), PathVariable, cuda);
            }
            return candidates;
        }
        foreach (var cuda in kinds)
        {
            var file = cuda ? CudaLibraryFileName : LibraryFileName;
            if (!string.IsNullOrEmpty(baseDirectory))
            {
                foreach (var rid in new[] { PortableRuntimeIdentifier, RuntimeInformation.RuntimeIdentifier })
                {
                    Add(System.IO.Path.Combine(baseDirectory, "runtimes", rid, "native", file), "application runtimes folder", cuda);
                }
                Add(System.IO.Path.Combine(baseDirectory, file), "application folder", cuda);
            }
            if (includeDefaultProbing)
            {
                candidates.Add(new Candidate(null, "the runtime's default probing", cuda));
            }
        }
        return candidates;
    }

    /// <summary>
    /// Tries the candidates of <paramref name="preference"/> in order and returns the first library
    /// that loads and has the expected ABI version. Testable: it touches no static state.
    /// </summary>
    /// <param name="nativePathSetting">The value of <c>NE_NATIVE_PATH</c>.</param>
    /// <param name="baseDirectory">The application's folder.</param>
    /// <param name="includeDefaultProbing">Whether to end with the runtime's default probing.</param>
    /// <param name="preference">Which library to try first.</param>
    /// <param name="purpose">What the load is for, as the selection and messages tell it.</param>
    /// <param name="probeDriver">Returns <see langword="null"/> when the NVIDIA driver loads, or the
    /// loader's error; the CUDA library's candidates are passed over when it does not (except a file
    /// that <c>NE_NATIVE_PATH</c> names, which is always tried).</param>
    /// <exception cref="NativeEngineLoadException">No candidate loads (the message lists each with its
    /// error), or the first one that loads has another ABI version.</exception>
    /// <exception cref="NativeEngineException"><see cref="LibraryPreference.CudaOnly"/> and no CUDA
    /// library loads: <see cref="Status.BackendUnavailable"/>, naming what is missing.</exception>
    internal static LoadedLibrary Load(string? nativePathSetting, string baseDirectory, bool includeDefaultProbing,
        LibraryPreference preference, string purpose, Func<string?> probeDriver)
    {
        ArgumentNullException.ThrowIfNull(probeDriver);
        var candidates = GetCandidates(nativePathSetting, baseDirectory, includeDefaultProbing, preference);
        var namedFile = !string.IsNullOrWhiteSpace(nativePathSetting) && !Directory.Exists(nativePathSetting);
        // The CPU library can serve CPU contexts without the driver, so CpuFirst never asks for it.
        var driverError = preference != LibraryPreference.CpuFirst && !namedFile ? probeDriver() : null;
        var errors = new List<string>(candidates.Count);
        var passedOver = new List<string>();
        foreach (var candidate in candidates)
        {
            string error;
            if (candidate.Cuda && driverError is not null)
            {
                error = $"passed over: the NVIDIA driver ({DriverLibraryName}) cannot be loaded ({driverError})";
                if (!passedOver.Exists(note => note.StartsWith(CudaLibraryFileName, StringComparison.Ordinal)))
                {
                    passedOver.Add($"{CudaLibraryFileName} {error}");
                }
                errors.Add(error);
                continue;
            }
            if (TryLoad(candidate, out var handle, out var loadedPath, out error))
            {
                CheckAbiVersion(handle, loadedPath);
                var hasCuda = HasCudaBackend(handle);
                var selection = new StringBuilder();
                selection.Append("for ").Append(purpose).Append(": ").Append(PreferenceText(preference)).Append("; ");
                foreach (var note in passedOver)
                {
                    selection.Append(note).Append("; ");
                }
                selection.Append("loaded ").Append(loadedPath).Append(" (").Append(candidate.Source).Append(", ")
                    .Append(hasCuda ? "CPU and CUDA backends" : "CPU backend only").Append(')');
                return new LoadedLibrary(handle, loadedPath, hasCuda, selection.ToString());
            }
            errors.Add(error);
            passedOver.Add($"{candidate.Display}: {error}");
        }

        var message = new StringBuilder();
        var onlyCuda = preference == LibraryPreference.CudaOnly;
        message.Append(onlyCuda
                ? $"The CUDA backend is unavailable: the CUDA library ({CudaLibraryFileName} for {PortableRuntimeIdentifier}) could not be loaded, for {purpose}. Tried, in order:"
                : $"Could not load the NativeEngine native library ({LibraryFileName} for {PortableRuntimeIdentifier}), for {purpose}. Tried, in order:");
        for (var i = 0; i < candidates.Count; i++)
        {
            message.AppendLine().Append("  ").Append(i + 1).Append(". ").Append(candidates[i].Display)
                .Append(" (").Append(candidates[i].Source).Append("): ").Append(errors[i]);
        }
        message.AppendLine().Append(string.IsNullOrWhiteSpace(nativePathSetting)
            ? $"Set {PathVariable} to the library file or the folder that contains it, or reference the NativeEngine package, which ships it in runtimes/<rid>/native/."
            : $"{PathVariable} is set, so no other location was searched: correct it, or unset it to search the application's folders.");
        if (onlyCuda)
        {
            message.AppendLine().Append($"The CUDA backend needs {CudaLibraryFileName} (built where nvcc is found: NE_CUDA=ON), " +
                $"cuBLAS from the CUDA toolkit, and the NVIDIA driver ({DriverLibraryName}); use {BackendSetting.EnvironmentVariable}=auto or the CPU backend to run without them.");
            throw new NativeEngineException(Status.BackendUnavailable, message.ToString());
        }
        throw new NativeEngineLoadException(message.ToString(), candidates.ConvertAll(c => c.Display));
    }

    private static string PreferenceText(LibraryPreference preference) => preference switch
    {
        LibraryPreference.CudaOnly => $"only {CudaLibraryFileName}",
        LibraryPreference.CudaFirst => $"{CudaLibraryFileName} first where the NVIDIA driver loads, then {LibraryFileName}",
        _ => $"{LibraryFileName} first, then {CudaLibraryFileName}",
    };

    // Whether the NVIDIA driver loads: null when it does, else the loader's error. The driver stays
    // loaded: the CUDA library, loaded next, needs it anyway.
    private static string? ProbeDriver()
    {
        if (OperatingSystem.IsMacOS())
        {
            return "CUDA is not available on macOS";
        }
        try
        {
            NativeLibrary.Load(DriverLibraryName);
            return null;
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            return CleanLoaderMessage(e.Message);
        }
    }

    private static bool TryLoad(Candidate candidate, out nint handle, out string loadedPath, out string error)
    {
        handle = 0;
        loadedPath = candidate.Path ?? candidate.ProbingName;
        error = "";
        try
        {
            if (candidate.Path is null)
            {
                handle = NativeLibrary.Load(candidate.ProbingName, typeof(NativeLibraryLoader).Assembly, searchPath: null);
                loadedPath = LoadedModulePath(handle) ?? candidate.ProbingName;
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
            if (candidate.Cuda && error.Contains("libcublas", StringComparison.Ordinal))
            {
                error += " (cuBLAS, from the CUDA toolkit: install it, or add its folder to LD_LIBRARY_PATH)";
            }
            return false;
        }
    }

    private static unsafe bool HasCudaBackend(nint handle)
    {
        if (!NativeLibrary.TryGetExport(handle, "ne_get_system_info", out var export))
        {
            return false;
        }
        var info = new NeSystemInfo { StructSize = (uint)sizeof(NeSystemInfo) };
        return ((delegate* unmanaged<NeSystemInfo*, Status>)export)(&info) == Status.Ok && info.CudaCompiled != 0;
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

    private static string FileNameOf(string name) =>
        OperatingSystem.IsWindows() ? $"{name}.dll"
        : OperatingSystem.IsMacOS() ? $"lib{name}.dylib"
        : $"lib{name}.so";

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
