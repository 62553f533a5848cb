using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using NativeEngine.Autograd;
using NativeEngine.Data;
using NativeEngine.Models;
using Spectre.Console;

namespace NativeEngine.Cli.Commands;

/// <summary><c>bench</c>: a quick, side-by-side measurement of the kernels through the managed API, each next to
/// its baseline in the same run (machines are noisy: read the ratios). The native Google Benchmark suite
/// (<c>./build.sh bench</c>) has the full matrix; docs/benchmarks.md has recorded results.</summary>
internal static class BenchCommand
{
    private sealed record Row(string Name, string Shape, double Value, string Unit, string Baseline, double BaselineValue);

    public static Command Create()
    {
        var context = new ContextOptionsBinder();
        var repetitions = new Option<int>("--repetitions") { Description = "Timed runs per measurement (the best is kept).", DefaultValueFactory = _ => 5, HelpName = "N" };
        var command = new Command("bench", "Measure the kernels side by side with their baselines: LayerNorm vs copy, int8 vs fp32 GEMM, sampled vs full softmax loss, and a training step of the main job's model.");
        context.AddTo(command);
        command.Add(repetitions);
        command.SetAction(parse =>
        {
            var runs = parse.GetValue(repetitions);
            if (runs < 1)
            {
                throw new CliException($"--repetitions must be positive; got {runs}");
            }
            using var ctx = Context.Create(context.Bind(parse));
            AnsiConsole.MarkupLine($"[bold]NativeEngine bench[/]  {Markup.Escape(ctx.Backend.ToString())} \u00b7 {Markup.Escape(ctx.SimdLevel.ToString())} \u00b7 {ctx.NumThreads} thread(s) \u00b7 best of {runs}");
            var rows = new List<Row>();
            AnsiConsole.Status().Start("measuring", status =>
            {
                status.Status("LayerNorm");
                rows.Add(LayerNorm(ctx, runs));
                status.Status("GEMM");
                rows.Add(Gemm(ctx, runs));
                status.Status("softmax losses");
                rows.Add(Losses(ctx, runs));
                status.Status("training step");
                rows.Add(TrainingStep(ctx, runs));
            });
            var table = new Table().Border(TableBorder.Rounded).AddColumn("kernel").AddColumn("shape")
                .AddColumn(new TableColumn("ours").RightAligned()).AddColumn("baseline").AddColumn(new TableColumn("baseline value").RightAligned())
                .AddColumn(new TableColumn("ratio").RightAligned());
            foreach (var row in rows)
            {
                table.AddRow(Markup.Escape(row.Name), Markup.Escape(row.Shape), $"{Format(row.Value)} {Markup.Escape(row.Unit)}",
                    Markup.Escape(row.Baseline), $"{Format(row.BaselineValue)} {Markup.Escape(row.Unit)}", Format(row.Value / row.BaselineValue) + "x");
            }
            AnsiConsole.Write(table);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Row LayerNorm(Context context, int runs)
    {
        const int rows = 4096, channels = 1024;
        using var scope = new TensorScope();
        var x = Random(context, 1, rows, channels);
        var residual = Random(context, 2, rows, channels);
        var gamma = Tensor.Create(context, Dtype.F32, channels);
        gamma.Fill(1);
        var y = Tensor.Create(context, Dtype.F32, rows, channels);
        var sum = Tensor.Create(context, Dtype.F32, rows, channels);
        var mean = Tensor.Create(context, Dtype.F32, rows);
        var rstd = Tensor.Create(context, Dtype.F32, rows);
        var ln = Best(context, runs, () => Ops.LayerNormForward(context, x, residual, gamma, null, y, sum, mean, rstd));
        var copy = Best(context, runs, () => y.CopyFrom(x));
        // LayerNorm reads x and the residual and writes y and their sum; the copy reads and writes one tensor.
        var bytes = 4.0 * rows * channels;
        return new Row("LayerNorm fwd + residual", $"{rows} x {channels}", 4 * bytes / ln / 1e9, "GB/s", "tensor copy", 2 * bytes / copy / 1e9);
    }

    private static Row Gemm(Context context, int runs)
    {
        const int m = 1024, n = 1024, k = 1024;
        using var scope = new TensorScope();
        var a = Random(context, 3, m, k);
        var b = Random(context, 4, n, k);
        var c = Tensor.Create(context, Dtype.F32, m, n);
        var (qa, sa) = Ops.Quantize(a);
        var (qb, sb) = Ops.Quantize(b);
        var int8 = Best(context, runs, () => Ops.GemmInt8(context, qa, qb, sa, sb, null, c));
        var fp32 = Best(context, runs, () => Ops.Gemm(context, a, b, c, transposeB: true));
        var ops = 2.0 * m * n * k;
        return new Row("int8 GEMM (fused dequant)", $"{m} x {n} x {k}", ops / int8 / 1e9, "GOPS", "fp32 GEMM", ops / fp32 / 1e9);
    }

    private static Row Losses(Context context, int runs)
    {
        const int rows = 1024, dimension = 256, vocabulary = 32768, samples = 1024;
        using var scope = new TensorScope();
        var hidden = new Variable(Random(context, 5, rows, dimension), requiresGrad: true);
        var weight = new Variable(Random(context, 6, vocabulary, dimension), requiresGrad: true);
        var ids = new int[rows];
        for (var i = 0; i < rows; i++)
        {
            ids[i] = (int)((i * 2654435761L) % vocabulary);
        }
        var targets = Tensor.FromArray<int>(context, ids, rows);
        var sampled = Best(context, runs, () => Step(() => Fn.SampledSoftmaxLoss(hidden, weight, null, targets, samples, 7, rows)));
        var full = Best(context, runs, () => Step(() => Fn.CrossEntropyLoss(hidden, weight, null, targets, rows)));
        return new Row("sampled softmax step", $"N={rows} D={dimension} V={vocabulary} S={samples}", rows / sampled, "rows/s", "full softmax CE step", rows / full);
    }

    private static void Step(Func<Variable> loss)
    {
        using var tape = new GradientTape();
        tape.Backward(loss());
    }

    private static Row TrainingStep(Context context, int runs)
    {
        var task = new ReversalTask();
        var config = new TransformerConfig
        {
            VocabularySize = task.VocabSize, MaxSequenceLength = task.SequenceLength, ModelDimension = 64, Layers = 2, Heads = 4, KvHeads = 4, MlpDimension = 256,
        };
        using var model = new DecoderOnlyTransformer(context, config, 1);
        var batch = task.GetTrainingBatch(0, 32);
        var forwardBackward = Best(context, runs, () =>
        {
            using var tape = new GradientTape();
            tape.Backward(model.Loss(batch, LossOptions.Full));
        });
        var forward = Best(context, runs, () => model.EvaluateLoss(batch));
        var tokens = (double)batch.BatchSize * batch.SequenceLength;
        return new Row("training step (fwd + bwd)", $"main job model, {batch.BatchSize} x {batch.SequenceLength}", tokens / forwardBackward, "tok/s", "forward only", tokens / forward);
    }

    private static Tensor Random(Context context, int seed, params long[] shape)
    {
        var values = new float[shape.Aggregate(1L, (p, d) => p * d)];
        var random = new Random(seed);
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1);
        }
        return Tensor.FromArray<float>(context, values, shape);
    }

    // The best of `runs` timings, in seconds per call. On a device, a call only queues work: each
    // timing runs from one wait for the context to the next, over enough calls (found by doubling)
    // to last 10 ms, so that the wait does not dwarf a short kernel.
    private static double Best(Context context, int runs, Action action)
    {
        action();
        var calls = 1;
        while (Time(context, calls, action) < 0.01 && calls < 1 << 16)
        {
            calls *= 2;
        }
        var best = double.MaxValue;
        for (var i = 0; i < runs; i++)
        {
            best = Math.Min(best, Time(context, calls, action) / calls);
        }
        return best;
    }

    private static double Time(Context context, int calls, Action action)
    {
        context.Synchronize();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < calls; i++)
        {
            action();
        }
        context.Synchronize();
        return clock.Elapsed.TotalSeconds;
    }

    private static string Format(double value) =>
        value.ToString(value >= 100 ? "N0" : value >= 10 ? "F1" : "F2", CultureInfo.InvariantCulture);
}
