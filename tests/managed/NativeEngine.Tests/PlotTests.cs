using System.Buffers.Binary;
using NativeEngine.Tests.Support;
using NativeEngine.Training;
using SkiaSharp;

namespace NativeEngine.Tests;

public sealed class PlotTests : IDisposable
{
    private static readonly byte[] s_pngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static LossCurve SampleCurve()
    {
        var curve = new LossCurve();
        for (var step = 1; step <= 50; step++)
        {
            curve.Add(step, 3.0 / Math.Sqrt(step), step % 10 == 0 ? 3.2 / Math.Sqrt(step) : null, 12_000 + step, 1e-3 * Math.Min(1, step / 10.0));
        }
        return curve;
    }

    [Fact]
    public void TheCsvIsExactInTheInvariantCulture()
    {
        var curve = new LossCurve();
        curve.Add(1, 2.5, null, 1234.5, 0.001);
        curve.Add(10, 0.1, 0.125, 1e6, 3e-4);
        curve.Add(20, double.NaN, double.PositiveInfinity, 0, 0);
        var path = _temp.File("loss.csv");
        var culture = Thread.CurrentThread.CurrentCulture;
        try
        {
            // A culture with a decimal comma must not leak into the file.
            Thread.CurrentThread.CurrentCulture = new System.Globalization.CultureInfo("fr-FR");
            curve.SaveCsv(path);
        }
        finally
        {
            Thread.CurrentThread.CurrentCulture = culture;
        }

        Assert.Equal(
            "step,train_loss,eval_loss,tokens_per_second,learning_rate\n" +
            "1,2.5,,1234.5,0.001\n" +
            "10,0.1,0.125,1000000,0.0003\n" +
            "20,NaN,Infinity,0,0\n",
            File.ReadAllText(path));
        var back = LossCurve.LoadCsv(path);
        Assert.Equal(curve.Points.Count, back.Points.Count);
        Assert.Equal(curve.Points[1], back.Points[1]);
        Assert.True(double.IsNaN(back.Points[2].TrainLoss));
        Assert.Equal(["loss.csv"], _temp.Entries());
    }

    [Fact]
    public void StepsMustIncreaseAndTruncateAfterAllowsAResume()
    {
        var curve = SampleCurve();

        Assert.Contains("does not follow the last step 50", Assert.Throws<ArgumentException>(() => curve.Add(50, 1, null, 1, 1)).Message);
        Assert.Equal(20, curve.TruncateAfter(30));
        curve.Add(31, 1, null, 1, 1);
        Assert.Equal(31, curve.Points.Count);
    }

    [Fact]
    public void ABadCsvNamesTheLine()
    {
        var path = _temp.File("bad.csv");
        File.WriteAllText(path, LossCurve.CsvHeader + "\n1,2,,3,4\n2,x,,3,4\n");

        var e = Assert.Throws<InvalidDataException>(() => LossCurve.LoadCsv(path));

        Assert.StartsWith($"{path}: line 3:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheLossChartIsAValidNonTrivialPng()
    {
        var path = _temp.File("loss.png");

        SampleCurve().SavePng(path, title: "reverse: loss", width: 640, height: 400);

        AssertValidPng(File.ReadAllBytes(path), 640, 400);
        Assert.Equal(["loss.png"], _temp.Entries());
    }

    [Fact]
    public void AnEmptyCurveStillRenders()
    {
        var path = _temp.File("empty.png");

        new LossCurve().SavePng(path);

        var bytes = File.ReadAllBytes(path);
        Assert.Equal(s_pngSignature, bytes[..8]);
    }

    [Fact]
    public void TheHeatmapIsAValidNonTrivialPng()
    {
        var tokens = new[] { "a", "b", "c", "|", "c", "b", "a" };
        var n = tokens.Length;
        var weights = new float[n, n];
        for (var q = 0; q < n; q++)
        {
            for (var k = 0; k <= q; k++)
            {
                weights[q, k] = 1f / (q + 1) + (k == n - 1 - q ? 0.5f : 0f);
            }
        }
        var path = _temp.File("attention.png");

        AttentionHeatmap.SavePng(path, weights, tokens, tokens, "layer 0, head 0");

        var bytes = File.ReadAllBytes(path);
        var (width, height) = AssertValidPng(bytes, null, null);
        Assert.InRange(width, 400, 3000);
        Assert.InRange(height, 400, 3000);
    }

    [Fact]
    public void TheFlatHeatmapOverloadAndConstantMatricesWork()
    {
        var path = _temp.File("flat.png");

        AttentionHeatmap.SavePng(path, [0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f], 2, 3);

        AssertValidPng(File.ReadAllBytes(path), null, null);
    }

    [Fact]
    public void HeatmapArgumentsAreChecked()
    {
        var path = _temp.File("x.png");

        Assert.Contains("needs 6 values, got 5", Assert.Throws<ArgumentException>(() => AttentionHeatmap.SavePng(path, new float[5], 2, 3)).Message);
        Assert.Contains("keyLabels has 2 labels but the matrix has 3 columns",
            Assert.Throws<ArgumentException>(() => AttentionHeatmap.SavePng(path, new float[2, 3], keyLabels: ["a", "b"])).Message);
        Assert.Contains("at least one row", Assert.Throws<ArgumentException>(() => AttentionHeatmap.SavePng(path, new float[0, 3])).Message);
        Assert.Empty(_temp.Entries());
    }

    /// <summary>Checks the PNG signature and IHDR, decodes the image and checks that it is not a single color.</summary>
    private static (int Width, int Height) AssertValidPng(byte[] bytes, int? width, int? height)
    {
        Assert.True(bytes.Length > 33, "a PNG holds at least its signature and IHDR chunk");
        Assert.Equal(s_pngSignature, bytes[..8]);
        Assert.Equal(13u, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(8)));
        Assert.Equal("IHDR"u8.ToArray(), bytes[12..16]);
        var ihdrWidth = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(16));
        var ihdrHeight = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(20));
        if (width is not null)
        {
            Assert.Equal((width, height), (ihdrWidth, ihdrHeight));
        }

        using var bitmap = SKBitmap.Decode(bytes);
        Assert.NotNull(bitmap);
        Assert.Equal((ihdrWidth, ihdrHeight), (bitmap.Width, bitmap.Height));
        var colors = new HashSet<SKColor>();
        for (var y = 0; y < bitmap.Height; y += 3)
        {
            for (var x = 0; x < bitmap.Width; x += 3)
            {
                colors.Add(bitmap.GetPixel(x, y));
            }
        }
        Assert.True(colors.Count >= 3, $"the image has {colors.Count} distinct colors; expected a chart");
        return (ihdrWidth, ihdrHeight);
    }
}
