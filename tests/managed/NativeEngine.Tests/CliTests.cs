using NativeEngine.Cli;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>The CLI's contract with its user: exit codes, and exactly one "error: ..." line on
/// stderr for any bad input, never a stack trace. Runs in-process through <see cref="CliApp.Run"/>;
/// the console is process-wide, so these tests run alone.</summary>
[Collection(GlobalStateCollection.Name)]
public sealed class CliTests
{
    internal static (int ExitCode, string[] ErrorLines) Run(params string[] args)
    {
        var originalError = Console.Error;
        using var error = new StringWriter();
        Console.SetError(error);
        try
        {
            var exitCode = CliApp.Run(args);
            return (exitCode, error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        finally
        {
            Console.SetError(originalError);
        }
    }

    [Fact]
    public void TheDemoRunsAndEveryCheckPasses()
    {
        var (exitCode, errors) = Run("demo");

        Assert.Empty(errors);
        Assert.Equal(ExitCodes.Success, exitCode);
    }

    [Fact]
    public void OptionsWithoutACommandGoToTrain()
    {
        var (exitCode, errors) = Run("--steps", "0");

        Assert.Equal(ExitCodes.UsageError, exitCode);
        Assert.Equal("error: --steps must be positive; got 0", Assert.Single(errors));
    }

    [Fact]
    public void AnInvalidBackendVariableIsOneUsageErrorLine()
    {
        var previous = Environment.GetEnvironmentVariable(BackendSetting.EnvironmentVariable);
        Environment.SetEnvironmentVariable(BackendSetting.EnvironmentVariable, "tpu");
        try
        {
            var (exitCode, errors) = Run("info");

            Assert.Equal(ExitCodes.UsageError, exitCode);
            Assert.Equal($"error: NE_BACKEND is 'tpu'; expected {BackendSetting.AcceptedValues}", Assert.Single(errors));
        }
        finally
        {
            Environment.SetEnvironmentVariable(BackendSetting.EnvironmentVariable, previous);
        }
    }

    [Fact]
    public void BenchMeasuresEveryKernelAndItsBaseline()
    {
        var (exitCode, errors) = Run("bench", "--repetitions", "1");

        Assert.Empty(errors);
        Assert.Equal(ExitCodes.Success, exitCode);
    }

    [Fact]
    public void InfoSucceeds()
    {
        var (exitCode, errors) = Run("info");

        Assert.Empty(errors);
        Assert.Equal(ExitCodes.Success, exitCode);
    }

    [Theory]
    [InlineData(new[] { "bogus" }, "unrecognized command or argument 'bogus'")]
    [InlineData(new[] { "info", "--frobnicate" }, "unrecognized command or argument '--frobnicate'")]
    [InlineData(new[] { "demo", "--threads", "abc" }, "'abc'")]
    [InlineData(new[] { "bench", "--repetitions", "0" }, "--repetitions must be positive; got 0")]
    [InlineData(new[] { "demo", "--backend", "tpu" }, "tpu")]
    [InlineData(new[] { "demo", "--backend", "cuda:x" }, "--backend must be cpu, cuda, cuda:N (N a CUDA device index, 0 or more) or auto; got 'cuda:x'")]
    public void BadUsageIsOneErrorLineAndExitCode2(string[] args, string expected)
    {
        var (exitCode, errors) = Run(args);

        Assert.Equal(ExitCodes.UsageError, exitCode);
        var line = Assert.Single(errors);
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
    }

    [Fact]
    public void ANativeRefusalIsOneErrorLineWithTheNativeMessageAndExitCode3()
    {
        var (exitCode, errors) = Run("demo", "--threads", "-3");

        Assert.Equal(ExitCodes.NativeError, exitCode);
        var line = Assert.Single(errors);
        Assert.StartsWith("error: ne_context_create: argument 'options': num_threads is -3", line, StringComparison.Ordinal);
    }
}
