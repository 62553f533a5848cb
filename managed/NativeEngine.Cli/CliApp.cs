using System.CommandLine;
using NativeEngine.Cli.Commands;

namespace NativeEngine.Cli;

/// <summary>
/// The command tree and the top-level error policy: a bad option or a failure prints exactly one
/// line, "error: ...", on stderr and exits non-zero; no stack trace ever reaches the user.
/// </summary>
internal static class CliApp
{
    /// <summary>The command run when none is given.</summary>
    public const string DefaultCommand = "train";

    public static RootCommand BuildRootCommand()
    {
        var root = new RootCommand("NativeEngine: train and run transformers on fused native kernels, from .NET.");
        root.Add(TrainCommand.Create());
        root.Add(GenerateCommand.Create());
        root.Add(EvalCommand.Create());
        root.Add(QuantizeCommand.Create());
        root.Add(BenchCommand.Create());
        root.Add(InfoCommand.Create());
        root.Add(DemoCommand.Create());
        return root;
    }

    public static int Run(string[] args)
    {
        // No command (nothing, or only options such as --threads 2): run the main job.
        if (args.Length == 0 || (args[0].StartsWith('-') && args[0] is not ("--help" or "-h" or "-?" or "--version")))
        {
            args = [DefaultCommand, .. args];
        }
        var backendVariable = Environment.GetEnvironmentVariable(BackendSetting.EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(backendVariable) && !BackendSetting.TryParse(backendVariable, out _, out _))
        {
            return Fail(ExitCodes.UsageError,
                $"{BackendSetting.EnvironmentVariable} is '{backendVariable}'; expected {BackendSetting.AcceptedValues}");
        }
        try
        {
            var parseResult = BuildRootCommand().Parse(args);
            if (parseResult.Errors.Count > 0)
            {
                // An unknown word also leaves the root without a command; name the word, not the symptom.
                var error = parseResult.UnmatchedTokens.Count > 0
                    ? $"unrecognized command or argument '{parseResult.UnmatchedTokens[0]}'"
                    : parseResult.Errors[0].Message;
                return Fail(ExitCodes.UsageError, $"{error} (see --help)");
            }
            return parseResult.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (NativeEngineLoadException e)
        {
            return Fail(ExitCodes.NativeError, e.Message);
        }
        catch (NativeEngineException e)
        {
            return Fail(ExitCodes.NativeError, e.Message);
        }
        catch (CliException e)
        {
            return Fail(e.ExitCode, e.Message);
        }
        catch (Exception e)
        {
            return Fail(ExitCodes.InternalError, $"unexpected {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Writes one line "error: message" on stderr (multi-line messages are joined with "; ").</summary>
    public static int Fail(int exitCode, string message)
    {
        var line = new System.Text.StringBuilder();
        foreach (var part in message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            line.Append(line.Length == 0 ? "" : line[^1] == ':' ? " " : "; ").Append(part);
        }
        Console.Error.WriteLine($"error: {line}");
        return exitCode;
    }
}

/// <summary>A failure a command reports to the user as one line, with its exit code.</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.UsageError) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
