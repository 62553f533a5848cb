using System.Globalization;
using System.Text;
using NativeEngine.Checkpoints;
using ScottPlot;

namespace NativeEngine.Training;

/// <summary>
/// The history of a training run, one <see cref="LossPoint"/> per logged step, written as a CSV file and
/// as a PNG chart.
/// </summary>
/// <remarks>
/// <para>CSV: the header <see cref="CsvHeader"/>, then one line per point, <c>\n</c>-terminated, numbers in
/// the invariant culture with round-trip precision (<c>"R"</c>), an empty field when there is no eval loss,
/// <c>NaN</c> / <c>Infinity</c> for non-finite values. <see cref="LoadCsv"/> reads it back, so a resumed run
/// continues its curve (use <see cref="TruncateAfter"/> to drop the points logged after the checkpoint).</para>
/// <para>PNG: train loss (line) and eval loss (markers) against the step on the left axis, the learning rate
/// (dashed) on the right axis; non-finite values are left out of the chart (they stay in the CSV).</para>
/// <para>Both files are written atomically (<see cref="AtomicFile"/>): a reader, or a crash, never sees a
/// half-written file. Not thread-safe.</para>
/// </remarks>
public sealed class LossCurve
{
    /// <summary>The first line of the CSV file.</summary>
    public const string CsvHeader = "step,train_loss,eval_loss,tokens_per_second,learning_rate";

    private readonly List<LossPoint> _points = [];

    /// <summary>The points, by increasing step.</summary>
    public IReadOnlyList<LossPoint> Points => _points;

    /// <summary>Appends a point.</summary>
    /// <param name="step">The step; greater than the last point's.</param>
    /// <param name="trainLoss">The training loss.</param>
    /// <param name="evalLoss">The evaluation loss, or <see langword="null"/>.</param>
    /// <param name="tokensPerSecond">The throughput.</param>
    /// <param name="learningRate">The learning rate.</param>
    /// <exception cref="ArgumentException"><paramref name="step"/> is not greater than the last point's.</exception>
    public void Add(long step, double trainLoss, double? evalLoss, double tokensPerSecond, double learningRate) =>
        Add(new LossPoint(step, trainLoss, evalLoss, tokensPerSecond, learningRate));

    /// <summary>Appends a point.</summary>
    /// <param name="point">The point; its step greater than the last point's.</param>
    /// <exception cref="ArgumentException">The step is not greater than the last point's.</exception>
    public void Add(LossPoint point)
    {
        if (_points.Count > 0 && point.Step <= _points[^1].Step)
        {
            throw new ArgumentException(
                $"Step {point.Step} does not follow the last step {_points[^1].Step}; steps must increase (after a resume, call TruncateAfter first).",
                nameof(point));
        }
        _points.Add(point);
    }

    /// <summary>Removes the points after <paramref name="step"/>, such as those logged after the checkpoint a run
    /// resumes from.</summary>
    /// <param name="step">The last step to keep.</param>
    /// <returns>The number of points removed.</returns>
    public int TruncateAfter(long step) => _points.RemoveAll(p => p.Step > step);

    /// <summary>The CSV text (see the remarks).</summary>
    /// <returns>The header and one line per point.</returns>
    public string ToCsv()
    {
        var csv = new StringBuilder(CsvHeader).Append('\n');
        foreach (var p in _points)
        {
            csv.Append(p.Step.ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append(Format(p.TrainLoss)).Append(',')
                .Append(p.EvalLoss is { } eval ? Format(eval) : "").Append(',')
                .Append(Format(p.TokensPerSecond)).Append(',')
                .Append(Format(p.LearningRate)).Append('\n');
        }
        return csv.ToString();
    }

    /// <summary>Writes the CSV file atomically.</summary>
    /// <param name="path">The file; replaced if it exists. Its folder must exist.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="IOException">The file system failed; an existing file is left as it was.</exception>
    public void SaveCsv(string path) => AtomicFile.WriteAllText(path, ToCsv());

    /// <summary>Reads a CSV file written by <see cref="SaveCsv"/>.</summary>
    /// <param name="path">The file.</param>
    /// <returns>A curve with its points.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not such a CSV; the message names the line.</exception>
    public static LossCurve LoadCsv(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var fullPath = Path.GetFullPath(path);
        var lines = File.ReadAllLines(fullPath);
        if (lines.Length == 0 || lines[0] != CsvHeader)
        {
            throw new InvalidDataException($"{fullPath}: line 1: expected the header '{CsvHeader}'.");
        }
        var curve = new LossCurve();
        for (var i = 1; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
            {
                continue;
            }
            var fields = lines[i].Split(',');
            try
            {
                if (fields.Length != 5)
                {
                    throw new FormatException($"expected 5 fields, got {fields.Length}");
                }
                curve.Add(new LossPoint(
                    long.Parse(fields[0], NumberStyles.Integer, CultureInfo.InvariantCulture),
                    ParseDouble(fields[1]),
                    fields[2].Length == 0 ? null : ParseDouble(fields[2]),
                    ParseDouble(fields[3]),
                    ParseDouble(fields[4])));
            }
            catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
            {
                throw new InvalidDataException($"{fullPath}: line {i + 1}: {e.Message}", e);
            }
        }
        return curve;
    }

    /// <summary>Renders the chart and writes it as a PNG file, atomically.</summary>
    /// <param name="path">The file; replaced if it exists. Its folder must exist.</param>
    /// <param name="title">The chart's title, or <see langword="null"/> for none.</param>
    /// <param name="width">Width in pixels, 100 to 8000.</param>
    /// <param name="height">Height in pixels, 100 to 8000.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="IOException">The file system failed; an existing file is left as it was.</exception>
    public void SavePng(string path, string? title = null, int width = 900, int height = 540) =>
        AtomicFile.WriteAllBytes(path, RenderPng(title, width, height));

    /// <summary>The chart as PNG bytes.</summary>
    internal byte[] RenderPng(string? title, int width, int height)
    {
        PlotSizes.Check(width, height);
        var plot = new Plot();
        var train = Finite(_points.Select(p => (p.Step, (double?)p.TrainLoss)));
        var eval = Finite(_points.Select(p => (p.Step, p.EvalLoss)));
        var rates = Finite(_points.Select(p => (p.Step, (double?)p.LearningRate)));
        if (train.Xs.Length > 0)
        {
            var line = plot.Add.Scatter(train.Xs, train.Ys);
            line.LegendText = "train loss";
            line.MarkerSize = train.Xs.Length == 1 ? 5 : 0;
            line.LineWidth = 2;
        }
        if (eval.Xs.Length > 0)
        {
            var markers = plot.Add.Scatter(eval.Xs, eval.Ys);
            markers.LegendText = "eval loss";
            markers.LineWidth = 0;
            markers.MarkerSize = 7;
        }
        if (rates.Xs.Length > 0)
        {
            var rate = plot.Add.Scatter(rates.Xs, rates.Ys);
            rate.LegendText = "learning rate";
            rate.LinePattern = LinePattern.Dashed;
            rate.LineWidth = 1.5f;
            rate.MarkerSize = 0;
            rate.Axes.YAxis = plot.Axes.Right;
            plot.Axes.Right.Label.Text = "learning rate";
        }
        plot.Axes.Bottom.Label.Text = "step";
        plot.Axes.Left.Label.Text = "loss";
        if (title is not null)
        {
            plot.Title(title);
        }
        if (_points.Count > 0)
        {
            plot.ShowLegend(Alignment.UpperRight);
        }
        return plot.GetImageBytes(width, height, ImageFormat.Png);
    }

    private static (double[] Xs, double[] Ys) Finite(IEnumerable<(long Step, double? Value)> series)
    {
        var kept = series.Where(p => p.Value is { } v && double.IsFinite(v)).ToArray();
        return ([.. kept.Select(p => (double)p.Step)], [.. kept.Select(p => p.Value!.Value)]);
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static double ParseDouble(string text) => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
}
