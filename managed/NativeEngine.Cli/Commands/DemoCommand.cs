using System.CommandLine;
using System.Globalization;
using NativeEngine.Cli.Demo;
using Spectre.Console;

namespace NativeEngine.Cli.Commands;

/// <summary><c>demo</c>: runs every kernel family on seeded random data and checks it against the
/// library's scalar reference kernels.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var contextOptions = new ContextOptionsBinder();
        var seed = new Option<int>("--seed")
        {
            Description = "Seed of the random data.",
            DefaultValueFactory = _ => 42,
        };
        var command = new Command("demo", "Run each kernel (layernorm, rmsnorm, int8 quantize, GEMM, linear) on random data and check it against the scalar reference kernels.");
        contextOptions.AddTo(command);
        command.Add(seed);
        command.SetAction(parseResult => Run(contextOptions.Bind(parseResult), parseResult.GetValue(seed)));
        return command;
    }

    private static int Run(ContextOptions options, int seed)
    {
        using var context = Context.Create(options);
        using var reference = Context.Create(new ContextOptions { NumThreads = 1, SimdLevel = SimdLevel.Scalar });
        var before = context.GetMemoryStats();
        var results = new DemoRunner(context, reference, seed).RunAll();
        var after = context.GetMemoryStats();

        AnsiConsole.MarkupLine(
            $"[bold]NativeEngine demo[/]  {Markup.Escape(context.Backend.ToString())} \u00b7 {Markup.Escape(context.SimdLevel.ToString())} \u00b7 " +
            $"{context.NumThreads} thread(s) \u00b7 {Markup.Escape(context.DeviceName)} \u00b7 seed {seed}");
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn(new TableColumn("Kernel").NoWrap()).AddColumn(new TableColumn("Shape").NoWrap())
            .AddColumn(new TableColumn("Max error").RightAligned())
            .AddColumn(new TableColumn("Tolerance").RightAligned())
            .AddColumn(new TableColumn("ms").RightAligned())
            .AddColumn("Result");
        foreach (var r in results)
        {
            table.AddRow(
                Markup.Escape(r.Kernel),
                Markup.Escape(r.Shape),
                Format(r.MaxError),
                Format(r.Tolerance),
                double.IsNaN(r.Milliseconds) ? "-" : r.Milliseconds.ToString("F3", CultureInfo.InvariantCulture),
                r.Passed ? "[green]PASS[/]" : "[red]FAIL[/]");
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine("[grey]Norms: [[rows x channels]] with residual (fwd) and ds (bwd). GEMM/linear: M x N x K. " +
            "Error: largest |ours - scalar reference| / max(1, |reference|) over every output. ms: best of 3 runs.[/]");
        foreach (var r in results.Where(r => r.Failure is not null))
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(r.Kernel)}:[/] {Markup.Escape(r.Failure!)}");
        }

        if (after.LiveTensors != before.LiveTensors || after.LiveBytes != before.LiveBytes)
        {
            return CliApp.Fail(ExitCodes.CheckFailed,
                $"the demo leaked native memory: {after.LiveTensors - before.LiveTensors} tensor(s), {after.LiveBytes - before.LiveBytes} byte(s)");
        }
        var failed = results.Count(r => !r.Passed);
        return failed == 0
            ? ExitCodes.Success
            : CliApp.Fail(ExitCodes.CheckFailed, $"{failed} of {results.Count} kernel checks failed");
    }

    private static string Format(double value) =>
        double.IsNaN(value) ? "-" : double.IsPositiveInfinity(value) ? "mismatch" : value.ToString(value == 0 ? "0" : "0.00e+0", CultureInfo.InvariantCulture);
}
