using NativeEngine.Checkpoints;
using ScottPlot;

namespace NativeEngine.Training;

/// <summary>
/// Renders an attention matrix, [queries, keys], as a PNG heatmap: query i is row i from the top, key j is
/// column j from the left, with optional token labels on both axes and a color bar.
/// </summary>
/// <remarks>The color scale spans the matrix's own minimum and maximum (a constant matrix gets a unit range
/// around its value); NaN cells are drawn transparent. The image size follows the matrix (about 24 pixels a
/// cell, within 400 to 3000 pixels a side); with more than 64 rows or columns, only every n-th label is
/// shown. Files are written atomically (<see cref="AtomicFile"/>).</remarks>
public static class AttentionHeatmap
{
    private const int MaxLabels = 64;

    /// <summary>Writes the heatmap of <paramref name="weights"/> as a PNG file.</summary>
    /// <param name="path">The file; replaced if it exists. Its folder must exist.</param>
    /// <param name="weights">[queries, keys], at least 1 x 1: such as one head's attention probabilities.</param>
    /// <param name="queryLabels">One label per row (the query tokens), or <see langword="null"/> for row numbers.</param>
    /// <param name="keyLabels">One label per column (the key tokens), or <see langword="null"/> for column numbers.</param>
    /// <param name="title">The title, or <see langword="null"/> for none.</param>
    /// <exception cref="ArgumentNullException"><paramref name="weights"/> is null.</exception>
    /// <exception cref="ArgumentException">The matrix is empty, or a label list's length differs from its dimension.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="IOException">The file system failed; an existing file is left as it was.</exception>
    public static void SavePng(string path, float[,] weights, IReadOnlyList<string>? queryLabels = null,
        IReadOnlyList<string>? keyLabels = null, string? title = null) =>
        AtomicFile.WriteAllBytes(path, RenderPng(weights, queryLabels, keyLabels, title));

    /// <summary>Writes the heatmap of a row-major [<paramref name="rows"/>, <paramref name="columns"/>] matrix
    /// (such as <c>tensor.ToArray&lt;float&gt;()</c>) as a PNG file.</summary>
    /// <param name="path">The file; replaced if it exists. Its folder must exist.</param>
    /// <param name="weights">rows * columns values, row-major.</param>
    /// <param name="rows">Queries, &gt;= 1.</param>
    /// <param name="columns">Keys, &gt;= 1.</param>
    /// <param name="queryLabels">One label per row, or <see langword="null"/>.</param>
    /// <param name="keyLabels">One label per column, or <see langword="null"/>.</param>
    /// <param name="title">The title, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is below 1.</exception>
    /// <exception cref="ArgumentException">The value count is not rows * columns, or a label list's length is wrong.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="IOException">The file system failed; an existing file is left as it was.</exception>
    public static void SavePng(string path, ReadOnlySpan<float> weights, int rows, int columns,
        IReadOnlyList<string>? queryLabels = null, IReadOnlyList<string>? keyLabels = null, string? title = null) =>
        AtomicFile.WriteAllBytes(path, RenderPng(ToMatrix(weights, rows, columns), queryLabels, keyLabels, title));

    /// <summary>The heatmap as PNG bytes.</summary>
    internal static byte[] RenderPng(float[,] weights, IReadOnlyList<string>? queryLabels, IReadOnlyList<string>? keyLabels, string? title)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var rows = weights.GetLength(0);
        var columns = weights.GetLength(1);
        if (rows == 0 || columns == 0)
        {
            throw new ArgumentException($"The matrix is {rows} x {columns}; it needs at least one row and one column.", nameof(weights));
        }
        CheckLabels(queryLabels, rows, "queryLabels", "rows");
        CheckLabels(keyLabels, columns, "keyLabels", "columns");

        var data = new double[rows, columns];
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                var value = (double)weights[r, c];
                data[r, c] = value;
                if (double.IsFinite(value))
                {
                    min = Math.Min(min, value);
                    max = Math.Max(max, value);
                }
            }
        }

        var plot = new Plot();
        var heatmap = plot.Add.Heatmap(data);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        if (!double.IsFinite(min))
        {
            heatmap.ManualRange = new ScottPlot.Range(0, 1);
        }
        else if (min == max)
        {
            heatmap.ManualRange = new ScottPlot.Range(min - 0.5, max + 0.5);
        }
        plot.Add.ColorBar(heatmap);

        // Row 0 of the data is drawn at the top, at y = rows - 1; column c at x = c.
        plot.Axes.Left.SetTicks(TickPositions(rows, r => rows - 1 - r), TickLabels(rows, queryLabels));
        plot.Axes.Bottom.SetTicks(TickPositions(columns, c => c), TickLabels(columns, keyLabels));
        if (keyLabels is not null && keyLabels.Any(l => l.Length > 2))
        {
            plot.Axes.Bottom.TickLabelStyle.Rotation = 90;
            plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        }
        plot.Axes.Left.Label.Text = "query";
        plot.Axes.Bottom.Label.Text = "key";
        if (title is not null)
        {
            plot.Title(title);
        }
        plot.Axes.Margins(0, 0);

        var cell = 24;
        var width = Math.Clamp(columns * cell + 220, 400, 3000);
        var height = Math.Clamp(rows * cell + 180, 400, 3000);
        return plot.GetImageBytes(width, height, ImageFormat.Png);
    }

    private static float[,] ToMatrix(ReadOnlySpan<float> weights, int rows, int columns)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        if ((long)rows * columns != weights.Length)
        {
            throw new ArgumentException($"A {rows} x {columns} matrix needs {(long)rows * columns} values, got {weights.Length}.", nameof(weights));
        }
        var matrix = new float[rows, columns];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                matrix[r, c] = weights[r * columns + c];
            }
        }
        return matrix;
    }

    private static void CheckLabels(IReadOnlyList<string>? labels, int count, string name, string dimension)
    {
        if (labels is not null && labels.Count != count)
        {
            throw new ArgumentException($"{name} has {labels.Count} labels but the matrix has {count} {dimension}.", name);
        }
    }

    private static int Stride(int count) => (count + MaxLabels - 1) / MaxLabels;

    private static double[] TickPositions(int count, Func<int, int> position) =>
        [.. Enumerable.Range(0, count).Where(i => i % Stride(count) == 0).Select(i => (double)position(i))];

    private static string[] TickLabels(int count, IReadOnlyList<string>? labels) =>
        [.. Enumerable.Range(0, count).Where(i => i % Stride(count) == 0)
            .Select(i => labels?[i] ?? i.ToString(System.Globalization.CultureInfo.InvariantCulture))];
}
