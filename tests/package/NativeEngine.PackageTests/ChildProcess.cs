using System.Diagnostics;
using System.Text;

namespace NativeEngine.PackageTests;

/// <summary>Runs a command with a timeout and captures its output; on failure the assertion message
/// carries the command line, the exit code and the tail of the output.</summary>
internal static class ChildProcess
{
    public sealed record Result(int ExitCode, string Output);

    public static Result Run(string program, IEnumerable<string> arguments, string workingDirectory,
        IReadOnlyDictionary<string, string?> environment, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment.Clear();
        foreach (var (name, value) in environment)
        {
            if (value is not null)
            {
                start.Environment[name] = value;
            }
        }

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"Timed out after {timeout.TotalSeconds:F0} s: {CommandLine(start)}\n{Tail(output)}");
        }
        process.WaitForExit(); // drains the asynchronous readers
        return new Result(process.ExitCode, Snapshot(output));
    }

    public static Result RunChecked(string program, IEnumerable<string> arguments, string workingDirectory,
        IReadOnlyDictionary<string, string?> environment, TimeSpan timeout)
    {
        var list = arguments.ToList();
        var result = Run(program, list, workingDirectory, environment, timeout);
        if (result.ExitCode != 0)
        {
            Assert.Fail($"Exit code {result.ExitCode}: {program} {string.Join(' ', list)}\n{Tail(result.Output)}");
        }
        return result;
    }

    /// <summary>The last part of a long output, which is where build errors are.</summary>
    public static string Tail(string output, int characters = 6000) =>
        output.Length <= characters ? output : "...\n" + output[^characters..];

    private static string Tail(StringBuilder output)
    {
        lock (output)
        {
            return Tail(output.ToString());
        }
    }

    private static string Snapshot(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (output)
        {
            output.AppendLine(line);
        }
    }

    private static string CommandLine(ProcessStartInfo start) => $"{start.FileName} {string.Join(' ', start.ArgumentList)}";
}
