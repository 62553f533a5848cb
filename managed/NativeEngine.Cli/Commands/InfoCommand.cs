using System.CommandLine;
using Spectre.Console;

namespace NativeEngine.Cli.Commands;

/// <summary><c>info</c>: what the native library and this machine offer.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info", "Show which native library was loaded and why, its version and ABI, the CPU, its SIMD level and threads, and CUDA support.");
        command.SetAction(_ => Run());
        return command;
    }

    private static int Run()
    {
        var system = Engine.GetSystemInfo();
        string cpu;
        using (var context = Context.Create(new ContextOptions { NumThreads = 1 }))
        {
            cpu = context.DeviceName;
        }

        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        void Row(string name, string value) => grid.AddRow(new Markup($"[bold]{name}[/]"), new Text(value));
        Row("Library version", system.Version);
        Row("ABI version", $"{system.AbiVersion} (managed expects {NativeConstants.AbiVersion})");
        Row("Library path", system.LibraryPath);
        Row("Library choice", system.LibrarySelection);
        Row("Managed assembly", typeof(Engine).Assembly.GetName().Version?.ToString() ?? "?");
        Row("CPU", cpu);
        Row("Best SIMD level", system.BestSimdLevel.ToString());
        Row("Hardware threads", system.HardwareThreads.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Row("CUDA compiled", system.CudaCompiled ? "yes" : "no");
        Row("CUDA devices", system.CudaDeviceCount.ToString(System.Globalization.CultureInfo.InvariantCulture));
        for (var index = 0; system.CudaCompiled && index < system.CudaDeviceCount; index++)
        {
            Row($"CUDA device {index}", DescribeCudaDevice(index));
        }
        var setting = Environment.GetEnvironmentVariable(BackendSetting.EnvironmentVariable);
        Row(BackendSetting.EnvironmentVariable, string.IsNullOrWhiteSpace(setting) ? "unset" : setting);
        Row("Backend auto picks", system.CudaCompiled && system.CudaDeviceCount > 0 ? "cuda:0" : "cpu");
        AnsiConsole.Write(grid);
        return ExitCodes.Success;
    }

    private static string DescribeCudaDevice(int index)
    {
        try
        {
            using var context = Context.Create(new ContextOptions { Backend = Backend.Cuda, DeviceIndex = index });
            var culture = System.Globalization.CultureInfo.InvariantCulture;
            return string.Create(culture,
                $"{context.DeviceName}, sm_{context.ComputeCapability}, {context.MultiprocessorCount} SMs, " +
                $"{context.L2CacheBytes / (1024.0 * 1024.0):0.#} MiB L2, {context.MemoryBytes / (1024.0 * 1024.0 * 1024.0):0.#} GiB");
        }
        catch (NativeEngineException e)
        {
            return $"unavailable: {e.Message}";
        }
    }
}
