using System.Diagnostics;
using NativeEngine.Interop;

namespace NativeEngine.Tests;

public sealed class ExportedSymbolsTests
{
    [Fact]
    public void TheLoadedLibraryExportsExactlyTheBoundFunctions()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("Reads the dynamic symbol table with nm (Linux).");
        }
        var library = Engine.LibraryPath;

        var exported = DefinedDynamicSymbols(library).Where(s => s.StartsWith("ne_", StringComparison.Ordinal)).ToHashSet();
        var bound = NativeMethods.EntryPoints.ToHashSet();

        var missing = bound.Except(exported).Order().ToList();
        var unbound = exported.Except(bound).Order().ToList();
        Assert.True(missing.Count == 0 && unbound.Count == 0,
            $"{library}:\n" +
            $"  bound but not exported ({missing.Count}): {string.Join(", ", missing)}\n" +
            $"  exported but not bound ({unbound.Count}): {string.Join(", ", unbound)}");
    }

    private static List<string> DefinedDynamicSymbols(string library)
    {
        var start = new ProcessStartInfo("nm", ["-D", "--defined-only", library])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var nm = Process.Start(start) ?? throw new InvalidOperationException("Could not start nm.");
        var errors = nm.StandardError.ReadToEndAsync();
        var output = nm.StandardOutput.ReadToEnd();
        Assert.True(nm.WaitForExit(TimeSpan.FromMinutes(1)), "nm did not finish within a minute.");
        Assert.True(nm.ExitCode == 0, $"nm -D --defined-only {library} exited with {nm.ExitCode}: {errors.Result}");
        // "0000000000019ae0 T ne_context_create"
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 3)
            .Select(parts => parts[2])
            .ToList();
    }
}
