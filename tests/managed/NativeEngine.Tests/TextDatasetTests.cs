using NativeEngine.Data;
using NativeEngine.Tests.Support;
using NativeEngine.Tokenizers;

namespace NativeEngine.Tests;

public sealed class TextDatasetTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static string Corpus(int characters)
    {
        var text = new System.Text.StringBuilder();
        for (var i = 0; text.Length < characters; i++)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"line {i}: the quick brown fox jumps over the lazy dog.\n");
        }
        return text.ToString(0, characters);
    }

    [Fact]
    public void TheFileIsTokenizedOnceAndSplitAtTheEnd()
    {
        var path = _temp.File("corpus.txt");
        var text = Corpus(5000);
        File.WriteAllText(path, text);

        var data = TextDataset.FromFile(path, ByteTokenizer.Instance, new TextDatasetOptions { SequenceLength = 32 });

        Assert.Equal(Path.GetFullPath(path), data.Source);
        Assert.Equal(4500, data.TrainTokens.Length);
        Assert.Equal(500, data.ValidationTokens.Length);
        Assert.Equal(ByteTokenizer.Instance.Encode(text), (int[])[.. data.TrainTokens.ToArray(), .. data.ValidationTokens.ToArray()]);
    }

    [Fact]
    public void AWindowsTargetsAreItsInputsShiftedByOneWithinOnePart()
    {
        var data = TextDataset.FromText(Corpus(5000), ByteTokenizer.Instance, new TextDatasetOptions { SequenceLength = 16, Seed = 3 });
        var train = data.TrainTokens.ToArray();
        var validation = data.ValidationTokens.ToArray();

        foreach (var (batch, tokens) in new[] { (data.GetTrainingBatch(7, 8), train), (data.GetValidationBatch(0, 8), validation) })
        {
            Assert.Equal((8, 16), (batch.BatchSize, batch.SequenceLength));
            Assert.Equal(8 * 16, batch.TargetCount);
            for (var row = 0; row < batch.BatchSize; row++)
            {
                var input = batch.InputRow(row).ToArray();
                var target = batch.TargetRow(row).ToArray();
                Assert.Equal(input[1..], target[..^1]);
                var start = IndexOf(tokens, [.. input, target[^1]]);
                Assert.True(start >= 0, "every window lies inside its own part");
            }
        }
    }

    [Fact]
    public void BatchesAreDeterministicGivenSeedAndStep()
    {
        var text = Corpus(5000);
        var options = new TextDatasetOptions { SequenceLength = 16, Seed = 11 };
        var a = TextDataset.FromText(text, ByteTokenizer.Instance, options);
        var b = TextDataset.FromText(text, ByteTokenizer.Instance, options);
        var c = TextDataset.FromText(text, ByteTokenizer.Instance, options with { Seed = 12 });

        Assert.Equal(a.GetTrainingBatch(5, 4).Inputs, b.GetTrainingBatch(5, 4).Inputs);
        Assert.Equal(a.GetValidationBatch(2, 4).Inputs, b.GetValidationBatch(2, 4).Inputs);
        Assert.NotEqual(a.GetTrainingBatch(5, 4).Inputs, a.GetTrainingBatch(6, 4).Inputs);
        Assert.NotEqual(a.GetTrainingBatch(5, 4).Inputs, c.GetTrainingBatch(5, 4).Inputs);
    }

    [Fact]
    public void Cl100kTokensAreUsedAsIs()
    {
        var text = Corpus(4000);
        var data = TextDataset.FromText(text, Cl100kTokenizer.Instance, new TextDatasetOptions { SequenceLength = 8 });

        Assert.Equal(Cl100kTokenizer.Instance.Encode(text).Length, data.TrainTokens.Length + data.ValidationTokens.Length);
        Assert.All(data.GetTrainingBatch(0, 4).Inputs, id => Assert.InRange(id, 0, Cl100kTokenizer.Size - 1));
    }

    [Fact]
    public void AMissingFileIsAClearError()
    {
        var path = _temp.File("missing.txt");

        var e = Assert.Throws<FileNotFoundException>(() => TextDataset.FromFile(path, ByteTokenizer.Instance));

        Assert.Equal($"{path}: the text file does not exist.", e.Message);
    }

    [Fact]
    public void AnEmptyFileIsAClearError()
    {
        var path = _temp.File("empty.txt");
        File.WriteAllText(path, "");

        var e = Assert.Throws<InvalidDataException>(() => TextDataset.FromFile(path, ByteTokenizer.Instance));

        Assert.Equal($"{path}: the text is empty.", e.Message);
    }

    [Fact]
    public void ATooShortFileSaysWhatItHasAndWhatItNeeds()
    {
        var path = _temp.File("short.txt");
        File.WriteAllText(path, Corpus(200));

        var e = Assert.Throws<InvalidDataException>(() =>
            TextDataset.FromFile(path, ByteTokenizer.Instance, new TextDatasetOptions { SequenceLength = 64 }));

        Assert.Equal(
            $"{path}: too short: 200 tokens (byte) give 180 for training and 20 for validation, but each part needs at least one window " +
            "of 65 tokens (sequence length 64 + 1); use a longer text, a shorter sequence length or another validation fraction.",
            e.Message);
    }

    [Theory]
    [InlineData(0, 0.1, "SequenceLength is 0")]
    [InlineData(8, 0.0, "ValidationFraction is 0")]
    [InlineData(8, 1.0, "ValidationFraction is 1")]
    [InlineData(8, double.NaN, "ValidationFraction is NaN")]
    public void BadOptionsAreRefused(int length, double fraction, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => TextDataset.FromText("abc", ByteTokenizer.Instance,
            new TextDatasetOptions { SequenceLength = length, ValidationFraction = fraction }));

        Assert.Contains(expected, e.Message);
    }

    private static int IndexOf(int[] haystack, int[] needle)
    {
        for (var i = 0; i + needle.Length <= haystack.Length; i++)
        {
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle))
            {
                return i;
            }
        }
        return -1;
    }
}
