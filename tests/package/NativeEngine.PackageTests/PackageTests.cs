using System.Collections;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;

namespace NativeEngine.PackageTests;

/// <summary>
/// Packs managed/NativeEngine, consumes the package from a new console app in a temporary folder
/// (its own nuget.config: the local feed plus the sources configured on the machine; its own,
/// empty NuGet packages folder), runs a LayerNorm through it and checks the printed result.
/// </summary>
[Trait("Category", "Package")]
public sealed class PackageTests : IDisposable
{
    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(2);

    private readonly string _work = Directory.CreateTempSubdirectory("ne-package-test-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_work, recursive: true);
        }
        catch (IOException)
        {
            // A build server may still hold a file; the folder is in the temporary directory.
        }
    }

    [Fact]
    public void ThePackageRunsALayerNormInAFreshConsoleApp()
    {
        var repository = FindRepositoryRoot();
        var feed = Path.Combine(_work, "feed");
        var app = Path.Combine(_work, "app");
        var version = $"0.1.0-packagetest.{DateTime.UtcNow:yyyyMMddHHmmss}";
        var environment = ChildEnvironment(Path.Combine(_work, "nuget-packages"));
        var rid = RuntimeInformation.RuntimeIdentifier.Contains("musl", StringComparison.Ordinal) ? "linux-musl-x64" : PortableRid();
        var nativeFile = OperatingSystem.IsWindows() ? "nativeengine.dll" : OperatingSystem.IsMacOS() ? "libnativeengine.dylib" : "libnativeengine.so";

        // 1. Pack, with intermediate and output folders of its own so the developer's build is untouched.
        ChildProcess.RunChecked("dotnet",
        [
            "pack", Path.Combine(repository, "managed", "NativeEngine", "NativeEngine.csproj"),
            "-c", "Release", "-o", feed, "--disable-build-servers", "-nodeReuse:false",
            $"-p:Version={version}",
            "-p:NativeEngineSkipNativeBuild=true",
            $"-p:BaseIntermediateOutputPath={Path.Combine(_work, "pack", "obj")}/",
            $"-p:BaseOutputPath={Path.Combine(_work, "pack", "bin")}/",
        ], repository, environment, BuildTimeout);

        var package = Path.Combine(feed, $"NativeEngine.{version}.nupkg");
        Assert.True(File.Exists(package), $"{package} was not produced; the feed holds: {string.Join(", ", Directory.GetFiles(feed))}");
        using (var zip = ZipFile.OpenRead(package))
        {
            var entries = zip.Entries.Select(e => e.FullName).ToHashSet();
            Assert.Contains("lib/net10.0/NativeEngine.dll", entries);
            Assert.Contains("lib/net10.0/NativeEngine.xml", entries);
            Assert.Contains($"runtimes/{rid}/native/{nativeFile}", entries);
            Assert.True(zip.GetEntry($"runtimes/{rid}/native/{nativeFile}")!.Length > 0);
        }

        // 2. A new console app that references the package from the local feed.
        Directory.CreateDirectory(app);
        // Stop MSBuild from picking up Directory.Build.* or central package versions of an enclosing folder.
        File.WriteAllText(Path.Combine(app, "Directory.Build.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(app, "Directory.Build.targets"), "<Project />\n");
        File.WriteAllText(Path.Combine(app, "Directory.Packages.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <!-- The sources configured on this machine still apply; this adds the local feed. -->
                <add key="nativeengine-local" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "PackageConsumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="NativeEngine" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), ConsumerProgram);

        ChildProcess.RunChecked("dotnet",
            ["build", app, "-c", "Release", "--disable-build-servers", "-nodeReuse:false", "-o", Path.Combine(app, "out")],
            app, environment, BuildTimeout);
        Assert.True(File.Exists(Path.Combine(app, "out", "runtimes", rid, "native", nativeFile)),
            "The build output lacks the package's native library.");

        // 3. Run it.
        var run = ChildProcess.Run("dotnet", [Path.Combine(app, "out", "PackageConsumer.dll")], app, environment, RunTimeout);
        var output = run.Output;
        Assert.True(run.ExitCode == 0 && output.Contains("PACKAGE-OK", StringComparison.Ordinal),
            $"The consumer app failed (exit code {run.ExitCode}):\n{ChildProcess.Tail(output)}");

        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string Value(string key) => lines.Single(l => l.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..];
        // The library came from the package (copied into the app's output), not from the repository.
        Assert.StartsWith(Path.Combine(app, "out"), Value("library"));
        Assert.Equal("0", Value("live_tensors_after"));
        // LayerNorm of [1,2,3,4] and [-1,0,1,2]: both normalize to (x - mean) / sqrt(1.25 + 1e-5).
        var y = Value("y").Split(',').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var inv = 1.0 / Math.Sqrt(1.25 + 1e-5);
        double[] expected = [-1.5 * inv, -0.5 * inv, 0.5 * inv, 1.5 * inv];
        Assert.Equal(8, y.Length);
        for (var i = 0; i < 8; i++)
        {
            Assert.True(Math.Abs(y[i] - expected[i % 4]) < 1e-5, $"y[{i}] = {y[i]}, expected {expected[i % 4]}\n{output}");
        }
    }

    private const string ConsumerProgram = """
        using System.Globalization;
        using NativeEngine;

        // Written by NativeEngine.PackageTests: a LayerNorm on a 2x4 input through the NuGet package.
        using var context = Context.Create(new ContextOptions { NumThreads = 1 });
        float[] y;
        using (var scope = new TensorScope())
        {
            var x = Tensor.FromArray<float>(context, [1f, 2f, 3f, 4f, -1f, 0f, 1f, 2f], 2, 4);
            var gamma = Tensor.FromArray<float>(context, [1f, 1f, 1f, 1f]);
            var beta = Tensor.Create(context, Dtype.F32, 4);
            y = Ops.LayerNorm(x, gamma, beta, 1e-5f).ToArray<float>();
        }

        var inv = 1.0 / Math.Sqrt(1.25 + 1e-5);
        double[] expected = [-1.5 * inv, -0.5 * inv, 0.5 * inv, 1.5 * inv];
        var maxError = y.Select((v, i) => Math.Abs(v - expected[i % 4])).Max();
        Console.WriteLine($"library={Engine.LibraryPath}");
        Console.WriteLine($"version={Engine.GetSystemInfo().Version}");
        Console.WriteLine($"y={string.Join(",", y.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}");
        Console.WriteLine($"max_error={maxError.ToString("E3", CultureInfo.InvariantCulture)}");
        Console.WriteLine($"live_tensors_after={context.GetMemoryStats().LiveTensors}");
        Console.WriteLine(maxError < 1e-5 ? "PACKAGE-OK" : "PACKAGE-MISMATCH");
        return maxError < 1e-5 ? 0 : 1;
        """;

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "NativeEngine.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"No NativeEngine.sln above {AppContext.BaseDirectory}.");
    }

    private static string PortableRid()
    {
        var os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        return $"{os}-{RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant()}";
    }

    // The test host's environment minus what would steer the children: MSBuild state inherited from
    // the parent build, a NE_NATIVE_PATH override, the test platform's variables.
    private static Dictionary<string, string?> ChildEnvironment(string nugetPackages)
    {
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            var name = (string)entry.Key;
            if (name.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase)
                || name is "NE_NATIVE_PATH" or "NUGET_PACKAGES" or "DOTNET_HOST_PATH")
            {
                continue;
            }
            environment[name] = (string?)entry.Value;
        }
        environment["NUGET_PACKAGES"] = nugetPackages;
        environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        environment["DOTNET_NOLOGO"] = "1";
        environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        environment["MSBUILDDISABLENODEREUSE"] = "1";
        return environment;
    }
}
