using System.Diagnostics;
using System.Runtime.InteropServices;

namespace NativeEngine.Tests;

/// <summary>The loader's search runs through NativeLibraryLoader.Load with explicit inputs, so these
/// tests change no process state (environment, the loaded library).</summary>
public sealed class NativeLibraryLoaderTests : IDisposable
{
    private readonly string _emptyDirectory = Directory.CreateTempSubdirectory("ne-loader-").FullName;

    public void Dispose() => Directory.Delete(_emptyDirectory, recursive: true);

    [Fact]
    public void WhenNothingLoadsTheErrorListsEveryPathTriedWithItsError()
    {
        var e = Assert.Throws<NativeEngineLoadException>(() =>
            NativeLibraryLoader.Load(nativePathSetting: null, _emptyDirectory, includeDefaultProbing: false));

        var rid = NativeLibraryLoader.PortableRuntimeIdentifier;
        var file = NativeLibraryLoader.LibraryFileName;
        Assert.Equal(Path.Combine(_emptyDirectory, "runtimes", rid, "native", file), e.AttemptedPaths[0]);
        Assert.Equal(Path.Combine(_emptyDirectory, file), e.AttemptedPaths[^1]);
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
        File.Copy(Engine.LibraryPath, Path.Combine(_emptyDirectory, NativeLibraryLoader.LibraryFileName));

        var e = Assert.Throws<NativeEngineLoadException>(() =>
            NativeLibraryLoader.Load(missing, _emptyDirectory, includeDefaultProbing: true));

        Assert.Equal([missing], e.AttemptedPaths);
        Assert.Contains("(NE_NATIVE_PATH): file not found", e.Message);
    }

    [Fact]
    public void TheLoadersOwnErrorIsReportedForAFileThatIsNotALibrary()
    {
        var notALibrary = Path.Combine(_emptyDirectory, NativeLibraryLoader.LibraryFileName);
        File.WriteAllText(notALibrary, "not an ELF file");

        var e = Assert.Throws<NativeEngineLoadException>(() =>
            NativeLibraryLoader.Load(notALibrary, _emptyDirectory, includeDefaultProbing: false));

        var line = e.Message.Split('\n').First(l => l.Contains(notALibrary, StringComparison.Ordinal));
        Assert.DoesNotContain("file not found", line);
        Assert.Matches(@"\): \S", line);
    }

    [Fact]
    public void NativePathMayNameTheLibraryOrItsFolder()
    {
        var library = Engine.LibraryPath;

        foreach (var setting in new[] { library, Path.GetDirectoryName(library)! })
        {
            var (handle, path) = NativeLibraryLoader.Load(setting, _emptyDirectory, includeDefaultProbing: false);
            try
            {
                Assert.Equal(library, path);
                Assert.True(NativeLibrary.TryGetExport(handle, "ne_abi_version", out _));
            }
            finally
            {
                NativeLibrary.Free(handle);
            }
        }
    }

    [Fact]
    public void WithoutNativePathTheSearchOrderIsRuntimesThenTheApplicationFolderThenDefaultProbing()
    {
        var candidates = NativeLibraryLoader.GetCandidates(nativePathSetting: null, "/app", includeDefaultProbing: true);

        Assert.Equal(Path.Combine("/app", "runtimes", NativeLibraryLoader.PortableRuntimeIdentifier, "native", NativeLibraryLoader.LibraryFileName), candidates[0].Path);
        Assert.Equal(Path.Combine("/app", NativeLibraryLoader.LibraryFileName), candidates[^2].Path);
        Assert.Null(candidates[^1].Path);
        Assert.Equal(candidates.Count, candidates.Select(c => c.Path).Distinct().Count());
    }

    [Fact]
    public void WithNativePathOnlyThatPathIsACandidate()
    {
        var candidates = NativeLibraryLoader.GetCandidates("/opt/ne/libnativeengine.so", "/app", includeDefaultProbing: true);

        Assert.Equal(["/opt/ne/libnativeengine.so"], candidates.Select(c => c.Path));
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
            NativeLibraryLoader.Load(_emptyDirectory, "/nonexistent", includeDefaultProbing: false));

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
