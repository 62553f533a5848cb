using NativeEngine.Models;

namespace NativeEngine.Tests.Models;

public sealed class TransformerConfigTests
{
    private static readonly TransformerConfig s_valid = new()
    {
        VocabularySize = 100,
        MaxSequenceLength = 16,
        ModelDimension = 64,
        Layers = 2,
        Heads = 4,
        KvHeads = 2,
        MlpDimension = 256,
        Dropout = 0.1f,
        PositionalEncoding = PositionalEncodingKind.Sinusoidal,
        TieEmbeddings = false,
        Epsilon = 1e-6f,
        EncoderLayers = 3,
    };

    [Fact]
    public void JsonRoundTripsEveryFieldWithSnakeCaseNames()
    {
        var json = s_valid.ToJson();

        Assert.Equal(s_valid, TransformerConfig.FromJson(json));
        Assert.Equal(s_valid, TransformerConfig.FromJsonObject(s_valid.ToJsonObject()));
        Assert.Contains("\"vocabulary_size\": 100", json, StringComparison.Ordinal);
        Assert.Contains("\"positional_encoding\": \"sinusoidal\"", json, StringComparison.Ordinal);
        Assert.Contains("\"dropout\": 0.1", json, StringComparison.Ordinal);
        Assert.DoesNotContain("head_dimension", json, StringComparison.Ordinal);
    }

    [Fact]
    public void TheDefaultsAreADecoderOnlyTiedLearnedModel()
    {
        var config = TransformerConfig.FromJson(
            """{"vocabulary_size": 10, "max_sequence_length": 8, "model_dimension": 16, "layers": 1, "heads": 2, "kv_heads": 1, "mlp_dimension": 32}""");

        Assert.Equal((0f, PositionalEncodingKind.Learned, true, 1e-5f, 0, 8),
            (config.Dropout, config.PositionalEncoding, config.TieEmbeddings, config.Epsilon, config.EncoderLayers, config.HeadDimension));
    }

    public static TheoryData<string, string> InvalidFields() => new()
    {
        { "vocabulary_size=1", "VocabularySize is 1; it must be >= 2" },
        { "max_sequence_length=0", "MaxSequenceLength is 0; it must be >= 1" },
        { "model_dimension=66", "ModelDimension is 66; it must be a positive multiple of Heads (4)" },
        { "heads=0", "Heads is 0; it must be >= 1" },
        { "kv_heads=3", "KvHeads is 3; it must be a positive divisor of Heads (4)" },
        { "layers=0", "Layers is 0; it must be >= 1" },
        { "mlp_dimension=0", "MlpDimension is 0; it must be >= 1" },
        { "dropout=1", "Dropout is 1; it must be in [0, 1)" },
        { "epsilon=0", "Epsilon is 0; it must be finite and > 0" },
        { "encoder_layers=-1", "EncoderLayers is -1; it must be >= 0" },
    };

    [Theory]
    [MemberData(nameof(InvalidFields))]
    public void ValidateNamesTheFieldAndTheExpectedValue(string change, string message)
    {
        var json = s_valid.ToJsonObject();
        var (key, value) = (change.Split('=')[0], double.Parse(change.Split('=')[1], System.Globalization.CultureInfo.InvariantCulture));
        json[key] = value;

        var e = Assert.Throws<ArgumentException>(() => TransformerConfig.FromJsonObject(json));

        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AHeadWiderThanTheAttentionKernelIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => (s_valid with { ModelDimension = 1024, Heads = 2, KvHeads = 2 }).Validate());

        Assert.Equal("Heads", e.ParamName);
        Assert.Contains("at least ModelDimension / 256 = 4", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"vocabulary_size": 10}""", "max_sequence_length")]
    [InlineData("""{"vocabulary_size": 10, "max_sequence_length": 8, "model_dimension": 16, "layers": 1, "heads": 2, "kv_heads": 1, "mlp_dimension": 32, "d_model": 3}""", "d_model")]
    [InlineData("""{"vocabulary_size": 10, "max_sequence_length": 8, "model_dimension": 16, "layers": 1, "heads": 2, "kv_heads": 1, "mlp_dimension": 32, "positional_encoding": "rotary"}""", "positional_encoding")]
    [InlineData("[1, 2]", "TransformerConfig")]
    public void MalformedJsonIsAnArgumentException(string json, string mentioned)
    {
        var e = Assert.Throws<ArgumentException>(() => TransformerConfig.FromJson(json));

        Assert.Contains(mentioned, e.Message, StringComparison.Ordinal);
    }
}
