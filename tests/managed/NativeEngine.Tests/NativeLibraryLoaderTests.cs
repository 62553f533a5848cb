using System.Diagnostics;
using System.Runtime.InteropServices;

namespace NativeEngine.Tests;

/// <summary>The loader's search runs through NativeLibraryLoader.Load with explicit inputs (the
/// NVIDIA driver's presence included), so these tests change no process state (environment, the
/// loaded library).</summary>
public sealed class NativeLibraryLoaderTests : IDisposable
{
    private const string NoDriver = "libcuda.so.1: cannot open shared object file: No such file or directory";

    private readonly string _emptyDirectory = Directory.CreateTempSubdirectory("ne-loader-").FullName;

    public void Dispose() => Directory.Delete(_emptyDirectory, recursive: true);

    // The CPU library of this build: the copy the project reference puts beside the tests.
    private static string CpuLibrary => Path.Combine(AppContext.BaseDirectory, "runtimes",
        NativeLibraryLoader.PortableRuntimeIdentifier, "native", NativeLibraryLoader.LibraryFileName);

    private static NativeLibraryLoader.LoadedLibrary Load(string? nativePath, string baseDirectory, bool includeDefaultProbing,
        NativeLibraryLoader.LibraryPreference preference = NativeLibraryLoader.LibraryPreference.CpuFirst, string? driverError = NoDriver) =>
        NativeLibraryLoader.Load(nativePath, baseDirectory, includeDefaultProbing, preference, "a test", () => driverError);

    private string InFolder(string file) => Path.Combine(_emptyDirectory, file);

    [Fact]
    public void WhenNothingLoadsTheErrorListsEveryPathTriedWithItsError()
    {
        var e = Assert.Throws<NativeEngineLoadException>(() => Load(nativePath: null, _emptyDirectory, includeDefaultProbing: false));

        var rid = NativeLibraryLoader.PortableRuntimeIdentifier;
        Assert.Equal(Path.Combine(_emptyDirectory, "runtimes", rid, "native", NativeLibraryLoader.LibraryFileName), e.AttemptedPaths[0]);
        Assert.Equal(InFolder(NativeLibraryLoader.CudaLibraryFileName), e.AttemptedPaths[^1]);
        foreach (var path in e.AttemptedPaths)
        {
            Assert.Contains($"{path} (", e.Message);
            Assert.Contains("file not found", e.Message.Split('\n').First(l => l.Contains(path, StringComparison.Ordinal)));
        }
        Assert.Contains("NE_NATIVE_PATH", e.Message);
        Assert.IsAssignableFrom<DllNotFoundException>(e);
    }

    [Fact]
    public void AMissingNativePathIsTheOnlyPlaceTriedAndIsNamed()
    {
        var missing = Path.Combine(_emptyDirectory, "missing", "libnativeengine.so");
        File.Copy(CpuLibrary, InFolder(NativeLibraryLoader.LibraryFileName));

        var e = Assert.Throws<NativeEngineLoadException>(() => Load(missing, _emptyDirectory, includeDefaultProbing: true));

        Assert.Equal([missing], e.AttemptedPaths);
        Assert.Contains("(NE_NATIVE_PATH): file not found", e.Message);
    }

    [Fact]
    public void TheLoadersOwnErrorIsReportedForAFileThatIsNotALibrary()
    {
        var notALibrary = InFolder(NativeLibraryLoader.LibraryFileName);
        File.WriteAllText(notALibrary, "not an ELF file");

        var e = Assert.Throws<NativeEngineLoadException>(() => Load(notALibrary, _emptyDirectory, includeDefaultProbing: false));

        var line = e.Message.Split('\n').First(l => l.Contains(notALibrary, StringComparison.Ordinal));
        Assert.DoesNotContain("file not found", line);
        Assert.Matches(@"\): \S", line);
    }

    [Fact]
    public void NativePathMayNameTheLibraryOrItsFolder()
    {
        var library = CpuLibrary;

        foreach (var setting in new[] { library, Path.GetDirectoryName(library)! })
        {
            var loaded = Load(setting, _emptyDirectory, includeDefaultProbing: false);
            try
            {
                Assert.Equal(library, loaded.Path);
                Assert.False(loaded.HasCuda);
                Assert.True(NativeLibrary.TryGetExport(loaded.Handle, "ne_abi_version", out _));
                Assert.Contains($"loaded {library} (NE_NATIVE_PATH, CPU backend only)", loaded.Selection, StringComparison.Ordinal);
            }
            finally
            {
                NativeLibrary.Free(loaded.Handle);
            }
        }
    }

    [Fact]
    public void WithoutNativePathTheSearchIsRuntimesThenTheApplicationFolderThenDefaultProbingForEachLibraryInTurn()
    {
        List<NativeLibraryLoader.Candidate> Candidates(NativeLibraryLoader.LibraryPreference preference) =>
            NativeLibraryLoader.GetCandidates(nativePathSetting: null, "/app", includeDefaultProbing: true, preference);
        var cpuFirst = Candidates(NativeLibraryLoader.LibraryPreference.CpuFirst);
        var perLibrary = cpuFirst.Count / 2;

        Assert.Equal(Path.Combine("/app", "runtimes", NativeLibraryLoader.PortableRuntimeIdentifier, "native", NativeLibraryLoader.LibraryFileName), cpuFirst[0].Path);
        Assert.Equal(Path.Combine("/app", NativeLibraryLoader.LibraryFileName), cpuFirst[perLibrary - 2].Path);
        Assert.Equal(new NativeLibraryLoader.Candidate(null, "the runtime's default probing", Cuda: false), cpuFirst[perLibrary - 1]);
        Assert.All(cpuFirst[..perLibrary], c => Assert.False(c.Cuda));
        Assert.All(cpuFirst[perLibrary..], c => Assert.True(c.Cuda));
        Assert.Equal(Path.Combine("/app", NativeLibraryLoader.CudaLibraryFileName), cpuFirst[^2].Path);
        Assert.Equal("'nativeengine_cuda'", cpuFirst[^1].Display);
        Assert.Equal([.. cpuFirst[perLibrary..], .. cpuFirst[..perLibrary]], Candidates(NativeLibraryLoader.LibraryPreference.CudaFirst));
        Assert.Equal(cpuFirst[perLibrary..], Candidates(NativeLibraryLoader.LibraryPreference.CudaOnly));
    }

    [Fact]
    public void ANativePathFileIsTheOnlyCandidateWhateverTheBackend()
    {
        foreach (var preference in Enum.GetValues<NativeLibraryLoader.LibraryPreference>())
        {
            var candidates = NativeLibraryLoader.GetCandidates("/opt/ne/libnativeengine.so", "/app", includeDefaultProbing: true, preference);

            Assert.Equal(["/opt/ne/libnativeengine.so"], candidates.Select(c => c.Path));
        }
    }

    [Fact]
    public void ANativePathFolderHoldsEitherLibraryInTheOrderOfThePreference()
    {
        var cpu = InFolder(NativeLibraryLoader.LibraryFileName);
        var cuda = InFolder(NativeLibraryLoader.CudaLibraryFileName);
        IEnumerable<string?> Paths(NativeLibraryLoader.LibraryPreference preference) =>
            NativeLibraryLoader.GetCandidates(_emptyDirectory, "/app", includeDefaultProbing: true, preference).Select(c => c.Path);

        Assert.Equal([cpu, cuda], Paths(NativeLibraryLoader.LibraryPreference.CpuFirst));
        Assert.Equal([cuda, cpu], Paths(NativeLibraryLoader.LibraryPreference.CudaFirst));
        Assert.Equal([cuda], Paths(NativeLibraryLoader.LibraryPreference.CudaOnly));
    }

    [Fact]
    public void AutoWithoutTheDriverPassesOverTheCudaLibraryWithoutLoadingItAndLoadsTheCpuOne()
    {
        File.Copy(CpuLibrary, InFolder(NativeLibraryLoader.LibraryFileName));
        // Not a library: loading it would fail with the loader's error, so the note below shows it was never tried.
        File.WriteAllText(InFolder(NativeLibraryLoader.CudaLibraryFileName), "not an ELF file");

        var loaded = Load(_emptyDirectory, "/nonexistent", includeDefaultProbing: false, NativeLibraryLoader.LibraryPreference.CudaFirst);
        try
        {
            Assert.Equal(InFolder(NativeLibraryLoader.LibraryFileName), loaded.Path);
            Assert.False(loaded.HasCuda);
            Assert.StartsWith("for a test: ", loaded.Selection, StringComparison.Ordinal);
            Assert.Contains($"{NativeLibraryLoader.CudaLibraryFileName} passed over: the NVIDIA driver ({NativeLibraryLoader.DriverLibraryName}) cannot be loaded ({NoDriver})",
                loaded.Selection, StringComparison.Ordinal);
            Assert.DoesNotContain("ELF", loaded.Selection, StringComparison.Ordinal);
        }
        finally
        {
            NativeLibrary.Free(loaded.Handle);
        }
    }

    [Fact]
    public void CudaWithoutTheDriverIsBackendUnavailableNamingTheDriverAndLoadsNothing()
    {
        File.Copy(CpuLibrary, InFolder(NativeLibraryLoader.LibraryFileName));

        var e = Assert.Throws<NativeEngineException>(() =>
            Load(_emptyDirectory, "/nonexistent", includeDefaultProbing: false, NativeLibraryLoader.LibraryPreference.CudaOnly));

        Assert.Equal(Status.BackendUnavailable, e.Status);
        Assert.StartsWith($"The CUDA backend is unavailable: the CUDA library ({NativeLibraryLoader.CudaLibraryFileName}", e.NativeMessage, StringComparison.Ordinal);
        Assert.Contains($"the NVIDIA driver ({NativeLibraryLoader.DriverLibraryName}) cannot be loaded", e.NativeMessage, StringComparison.Ordinal);
        Assert.Contains("NE_BACKEND=auto", e.NativeMessage, StringComparison.Ordinal);
        Assert.DoesNotContain($"{InFolder(NativeLibraryLoader.LibraryFileName)} (", e.NativeMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void CudaWithTheDriverButNoCudaLibraryNamesTheMissingFile()
    {
        var e = Assert.Throws<NativeEngineException>(() =>
            Load(_emptyDirectory, "/nonexistent", includeDefaultProbing: false, NativeLibraryLoader.LibraryPreference.CudaOnly, driverError: null));

        Assert.Equal(Status.BackendUnavailable, e.Status);
        Assert.Contains($"{InFolder(NativeLibraryLoader.CudaLibraryFileName)} (NE_NATIVE_PATH): file not found", e.NativeMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void ACudaLibraryWhoseCublasIsMissingIsNamedAndAutoFallsBackToTheCpuLibrary()
    {
        var compiler = new[] { "cc", "gcc", "clang" }.FirstOrDefault(OnPath);
        if (compiler is null || !OperatingSystem.IsLinux())
        {
            Assert.Skip("Needs a C compiler on Linux to build a stand-in library.");
        }
        // A stand-in CUDA library that needs a cuBLAS, which is then removed.
        var stubs = Directory.CreateDirectory(InFolder("stubs")).FullName;
        var source = Path.Combine(stubs, "empty.c");
        File.WriteAllText(source, "int ne_test_stub;\n");
        var cublas = Path.Combine(stubs, "libcublas.so.99");
        Run(compiler, "-shared", "-fPIC", "-Wl,-soname,libcublas.so.99", "-o", cublas, source);
        Run(compiler, "-shared", "-fPIC", "-Wl,--no-as-needed", "-o", InFolder(NativeLibraryLoader.CudaLibraryFileName),
            source, "-L" + stubs, "-l:libcublas.so.99");
        File.Delete(cublas);
        File.Copy(CpuLibrary, InFolder(NativeLibraryLoader.LibraryFileName));

        var loaded = Load(_emptyDirectory, "/nonexistent", includeDefaultProbing: false, NativeLibraryLoader.LibraryPreference.CudaFirst, driverError: null);
        try
        {
            Assert.Equal(InFolder(NativeLibraryLoader.LibraryFileName), loaded.Path);
            Assert.Contains("libcublas.so.99", loaded.Selection, StringComparison.Ordinal);
            Assert.Contains("(cuBLAS, from the CUDA toolkit: install it, or add its folder to LD_LIBRARY_PATH)", loaded.Selection, StringComparison.Ordinal);
        }
        finally
        {
            NativeLibrary.Free(loaded.Handle);
        }
    }

    [Fact]
    public void ALibraryOfAnotherAbiVersionIsRefusedNamingBothVersions()
    {
        var compiler = new[] { "cc", "gcc", "clang" }.FirstOrDefault(OnPath);
        if (compiler is null || !OperatingSystem.IsLinux())
        {
            Assert.Skip("Needs a C compiler on Linux to build a stand-in library.");
        }
        var source = Path.Combine(_emptyDirectory, "fake.c");
        var library = Path.Combine(_emptyDirectory, "libnativeengine.so");
        File.WriteAllText(source, $"unsigned int ne_abi_version(void) {{ return {NativeConstants.AbiVersion + 41}u; }}\n");
        Run(compiler, "-shared", "-fPIC", "-o", library, source);

        var e = Assert.Throws<NativeEngineLoadException>(() =>
            Load(_emptyDirectory, "/nonexistent", includeDefaultProbing: false));

        Assert.Contains($"ABI version {NativeConstants.AbiVersion + 41}", e.Message);
        Assert.Contains($"ABI version {NativeConstants.AbiVersion}.", e.Message);
        Assert.Contains(library, e.Message);
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
        .Any(directory => File.Exists(Path.Combine(directory, program)));

    private static void Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), $"{program} timed out");
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', arguments)} failed ({process.ExitCode}): {stdout.Result}{stderr}");
    }
}
