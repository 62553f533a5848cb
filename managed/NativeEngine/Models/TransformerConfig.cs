using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace NativeEngine.Models;

/// <summary>How a transformer encodes positions.</summary>
public enum PositionalEncodingKind
{
    /// <summary>A learned [max length, C] table (GPT-2's <c>wpe</c>).</summary>
    Learned,

    /// <summary>The fixed sinusoidal table of "Attention Is All You Need" (nothing trained).</summary>
    Sinusoidal,
}

/// <summary>
/// The shape of a transformer: what is needed to rebuild it before loading its weights. Immutable; serialized
/// to JSON with snake_case names (<c>vocabulary_size</c>, <c>model_dimension</c>, ...) and string enums.
/// </summary>
/// <remarks>
/// <para>A decoder-only model (<see cref="DecoderOnlyTransformer"/>) has <see cref="Layers"/> blocks and
/// <see cref="EncoderLayers"/> = 0. An encoder-decoder model (<see cref="EncoderDecoderTransformer"/>) has
/// <see cref="EncoderLayers"/> encoder blocks and <see cref="Layers"/> decoder blocks, over one shared
/// vocabulary.</para>
/// <para>Construction does not validate (so that a JSON file can be read and then reported on):
/// <see cref="Validate"/> does, and the models call it.</para>
/// </remarks>
public sealed record TransformerConfig
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectRequiredConstructorParameters = true,
        WriteIndented = true,
    };

    /// <summary>V, the number of token ids, &gt;= 2.</summary>
    public required int VocabularySize { get; init; }

    /// <summary>The longest sequence (the positional table's length), &gt;= 1.</summary>
    public required int MaxSequenceLength { get; init; }

    /// <summary>C, the width of the residual stream; a multiple of <see cref="Heads"/>.</summary>
    public required int ModelDimension { get; init; }

    /// <summary>The number of (decoder) blocks, &gt;= 1.</summary>
    public required int Layers { get; init; }

    /// <summary>H, the query heads; C / H is at most 256 (the attention kernel's limit).</summary>
    public required int Heads { get; init; }

    /// <summary>Hkv, the key/value heads (grouped-query attention): a divisor of <see cref="Heads"/>; equal to it
    /// for plain multi-head attention.</summary>
    public required int KvHeads { get; init; }

    /// <summary>The hidden width of the MLPs (4 C in GPT-2), &gt;= 1.</summary>
    public required int MlpDimension { get; init; }

    /// <summary>The residual and embedding dropout probability, in [0, 1). Default 0.</summary>
    public float Dropout { get; init; }

    /// <summary>How positions are encoded. Default <see cref="PositionalEncodingKind.Learned"/>.</summary>
    public PositionalEncodingKind PositionalEncoding { get; init; } = PositionalEncodingKind.Learned;

    /// <summary>Whether the output projection is the token embedding (one shared parameter). Default true.</summary>
    public bool TieEmbeddings { get; init; } = true;

    /// <summary>The LayerNorms' epsilon, finite and &gt; 0. Default 1e-5.</summary>
    public float Epsilon { get; init; } = Ops.DefaultEpsilon;

    /// <summary>The encoder blocks of an encoder-decoder model; 0 (the default) for a decoder-only model.</summary>
    public int EncoderLayers { get; init; }

    /// <summary>D = C / H, the width of one head.</summary>
    [JsonIgnore]
    public int HeadDimension => Heads > 0 ? ModelDimension / Heads : 0;

    /// <summary>Checks every field.</summary>
    /// <exception cref="ArgumentException">A field is out of range; the message names it, its value and what it
    /// must be.</exception>
    public void Validate()
    {
        Require(VocabularySize >= 2, nameof(VocabularySize), VocabularySize, ">= 2");
        Require(MaxSequenceLength >= 1, nameof(MaxSequenceLength), MaxSequenceLength, ">= 1");
        Require(Heads >= 1, nameof(Heads), Heads, ">= 1");
        Require(ModelDimension >= 1 && ModelDimension % Heads == 0, nameof(ModelDimension), ModelDimension,
            $"a positive multiple of Heads ({Heads})");
        Require(ModelDimension / Heads <= 256, nameof(Heads), Heads,
            $"at least ModelDimension / 256 = {(ModelDimension + 255) / 256}, so that a head is at most 256 wide");
        Require(KvHeads >= 1 && Heads % KvHeads == 0, nameof(KvHeads), KvHeads, $"a positive divisor of Heads ({Heads})");
        Require(Layers >= 1, nameof(Layers), Layers, ">= 1");
        Require(MlpDimension >= 1, nameof(MlpDimension), MlpDimension, ">= 1");
        Require(Dropout >= 0f && Dropout < 1f, nameof(Dropout), Dropout, "in [0, 1)");
        Require(float.IsFinite(Epsilon) && Epsilon > 0f, nameof(Epsilon), Epsilon, "finite and > 0");
        Require(EncoderLayers >= 0, nameof(EncoderLayers), EncoderLayers, ">= 0 (0 for a decoder-only model)");
    }

    /// <summary>The configuration as indented JSON.</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    /// <summary>The configuration as a JSON object (such as for a checkpoint's <c>config.json</c>).</summary>
    /// <returns>A new object.</returns>
    public JsonObject ToJsonObject() => JsonSerializer.SerializeToNode(this, s_json)!.AsObject();

    /// <summary>Reads and validates a configuration written by <see cref="ToJson"/>.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="json"/> is null.</exception>
    /// <exception cref="ArgumentException">The JSON is malformed, misses a required field, has an unknown one, or a
    /// field is out of range.</exception>
    public static TransformerConfig FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        TransformerConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<TransformerConfig>(json, s_json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"Invalid transformer configuration JSON: {e.Message}", nameof(json), e);
        }
        if (config is null)
        {
            throw new ArgumentException("The transformer configuration JSON is null; expected an object.", nameof(json));
        }
        config.Validate();
        return config;
    }

    /// <summary>Reads and validates a configuration from a JSON object (see <see cref="FromJson"/>).</summary>
    /// <param name="json">The object.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="json"/> is null.</exception>
    /// <exception cref="ArgumentException">See <see cref="FromJson"/>.</exception>
    public static TransformerConfig FromJsonObject(JsonObject json)
    {
        ArgumentNullException.ThrowIfNull(json);
        return FromJson(json.ToJsonString());
    }

    private static void Require(bool condition, string field, object value, string expected)
    {
        if (!condition)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"TransformerConfig.{field} is {value}; it must be {expected}."), field);
        }
    }
}
