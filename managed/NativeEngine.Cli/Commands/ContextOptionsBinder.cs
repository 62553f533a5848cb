using System.CommandLine;
using System.CommandLine.Parsing;

namespace NativeEngine.Cli.Commands;

/// <summary>The options that choose a context (--backend, --threads, --simd), shared by every
/// command that runs kernels. Values are checked by the native library (Context.Create), not here.</summary>
/// <remarks>--backend defaults to cpu, not auto, until the CUDA kernels have run on a GPU
/// (tests/gpu/run.sh): auto would otherwise send the main job on a machine with a GPU to code that
/// has only been compiled. On a machine without one, cpu and auto give the same CPU context.
/// NE_BACKEND, when set, overrides --backend (Context.Create applies it).</remarks>
internal sealed class ContextOptionsBinder
{
    public Option<(Backend Backend, int DeviceIndex)> Backend { get; } = new("--backend")
    {
        Description = $"Backend to run on: cpu, cuda (device 0), cuda:N or auto (CUDA when the CUDA library, the driver and a GPU are present, else the CPU). {BackendSetting.EnvironmentVariable} overrides it.",
        DefaultValueFactory = _ => (NativeEngine.Backend.Cpu, 0),
        CustomParser = ParseBackend,
        HelpName = "cpu|cuda|cuda:N|auto",
    };

    public Option<int> Threads { get; } = new("--threads")
    {
        Description = "CPU threads the kernels use; 0 = every hardware thread.",
        DefaultValueFactory = _ => 0,
        HelpName = "N",
    };

    public Option<SimdLevel> Simd { get; } = new("--simd")
    {
        Description = "SIMD level of the CPU kernels: auto, scalar, avx2 or avx512.",
        DefaultValueFactory = _ => SimdLevel.Auto,
        CustomParser = result => ParseName(result, "--simd", SimdLevel.Auto,
            ("auto", SimdLevel.Auto), ("scalar", SimdLevel.Scalar), ("avx2", SimdLevel.Avx2), ("avx512", SimdLevel.Avx512)),
        HelpName = "auto|scalar|avx2|avx512",
    };

    public void AddTo(Command command)
    {
        command.Add(Backend);
        command.Add(Threads);
        command.Add(Simd);
    }

    public ContextOptions Bind(ParseResult parseResult) => new()
    {
        Backend = parseResult.GetValue(Backend).Backend,
        DeviceIndex = parseResult.GetValue(Backend).DeviceIndex,
        NumThreads = parseResult.GetValue(Threads),
        SimdLevel = parseResult.GetValue(Simd),
    };

    private static (Backend, int) ParseBackend(ArgumentResult result)
    {
        var token = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (BackendSetting.TryParse(token, out var backend, out var deviceIndex))
        {
            return (backend, deviceIndex);
        }
        result.AddError($"--backend must be {BackendSetting.AcceptedValues}; got '{token}'.");
        return (NativeEngine.Backend.Cpu, 0);
    }

    private static T ParseName<T>(ArgumentResult result, string option, T fallback, params (string Name, T Value)[] names)
    {
        var token = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        foreach (var (name, value) in names)
        {
            if (string.Equals(token, name, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }
        result.AddError($"{option} must be one of {string.Join(", ", names.Select(n => n.Name))}; got '{token}'.");
        return fallback;
    }
}
