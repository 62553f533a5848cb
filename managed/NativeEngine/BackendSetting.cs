using System.Globalization;

namespace NativeEngine;

/// <summary>
/// The text form of a backend choice (<c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>, <c>auto</c>) and the
/// <c>NE_BACKEND</c> environment variable that overrides the backend of every context.
/// </summary>
/// <remarks>
/// Precedence: when <c>NE_BACKEND</c> is set to a non-blank value, <see cref="Context.Create"/> uses
/// it in place of <see cref="ContextOptions.Backend"/> and <see cref="ContextOptions.DeviceIndex"/>
/// (the other options still apply); otherwise the options decide. The override lets a whole
/// program or test suite run on another backend without changing its code.
/// </remarks>
public static class BackendSetting
{
    /// <summary>The environment variable that overrides the backend: <c>NE_BACKEND</c>.</summary>
    public const string EnvironmentVariable = "NE_BACKEND";

    /// <summary>The accepted values, as error messages and help texts show them.</summary>
    public const string AcceptedValues = "cpu, cuda, cuda:N (N a CUDA device index, 0 or more) or auto";

    /// <summary>Parses a backend choice, ignoring case and surrounding blanks: <c>cpu</c>,
    /// <c>cuda</c> (device 0), <c>cuda:N</c> or <c>auto</c>.</summary>
    /// <param name="text">The text to parse.</param>
    /// <param name="backend">The backend, when the text is valid.</param>
    /// <param name="deviceIndex">The device index: N for <c>cuda:N</c>, otherwise 0.</param>
    /// <returns>Whether the text is one of the accepted values.</returns>
    public static bool TryParse(string? text, out Backend backend, out int deviceIndex)
    {
        backend = Backend.Cpu;
        deviceIndex = 0;
        var value = text?.Trim() ?? "";
        if (value.Equals("cpu", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        if (value.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            backend = Backend.Auto;
            return true;
        }
        if (value.Equals("cuda", StringComparison.OrdinalIgnoreCase))
        {
            backend = Backend.Cuda;
            return true;
        }
        const string cudaPrefix = "cuda:";
        if (value.StartsWith(cudaPrefix, StringComparison.OrdinalIgnoreCase)
            && value.Length > cudaPrefix.Length
            && value[cudaPrefix.Length..].All(char.IsAsciiDigit)
            && int.TryParse(value[cudaPrefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            backend = Backend.Cuda;
            deviceIndex = index;
            return true;
        }
        return false;
    }

    /// <summary>The options that <see cref="Context.Create"/> uses: <paramref name="options"/> with
    /// the backend and device index of <c>NE_BACKEND</c> when that variable is set.</summary>
    /// <param name="options">The options asked for.</param>
    /// <returns>The options in effect (<paramref name="options"/> itself when the variable is unset or blank).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException"><c>NE_BACKEND</c> is set to a value other than
    /// the accepted ones; the message names the variable, its value and the accepted values.</exception>
    public static ContextOptions ApplyEnvironment(ContextOptions options) =>
        Apply(options, Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary><see cref="ApplyEnvironment"/> for a given value of the variable, so that tests
    /// need not change the process environment.</summary>
    internal static ContextOptions Apply(ContextOptions options, string? setting)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(setting))
        {
            return options;
        }
        if (!TryParse(setting, out var backend, out var deviceIndex))
        {
            throw new InvalidOperationException(
                $"{EnvironmentVariable} is '{setting}'; expected {AcceptedValues} (case-insensitive), or unset it to " +
                "use the backend of the context options.");
        }
        return options with { Backend = backend, DeviceIndex = deviceIndex };
    }

    /// <summary>The backend the environment asks for, for choosing the native library before any
    /// context exists; <see langword="null"/> when the variable is unset, blank or invalid (an
    /// invalid value is reported by <see cref="Context.Create"/>).</summary>
    internal static Backend? EnvironmentBackend(string? setting) =>
        !string.IsNullOrWhiteSpace(setting) && TryParse(setting, out var backend, out _) ? backend : null;

    /// <summary>The text form of a choice: <c>cpu</c>, <c>cuda:N</c> or <c>auto</c>.</summary>
    internal static string Format(Backend backend, int deviceIndex) => backend switch
    {
        Backend.Cpu => "cpu",
        Backend.Cuda => string.Create(CultureInfo.InvariantCulture, $"cuda:{deviceIndex}"),
        Backend.Auto => "auto",
        _ => string.Create(CultureInfo.InvariantCulture, $"backend {(int)backend}"),
    };
}
