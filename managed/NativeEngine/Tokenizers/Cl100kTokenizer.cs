using Microsoft.ML.Tokenizers;

namespace NativeEngine.Tokenizers;

/// <summary>
/// OpenAI's cl100k_base byte-level BPE (GPT-4's), named <c>"cl100k"</c>, through
/// Microsoft.ML.Tokenizers (<c>TiktokenTokenizer.CreateForModel("gpt-4")</c>) with the vocabulary of
/// the Microsoft.ML.Tokenizers.Data.Cl100kBase package: no download at run time.
/// </summary>
/// <remarks>
/// <para>Ids: 0 to 100255 are the 100256 BPE tokens; the special ids are 100257
/// <c>&lt;|endoftext|&gt;</c> (<see cref="EndOfText"/>, also <see cref="Padding"/>), 100258 to 100260
/// <c>&lt;|fim_prefix|&gt;</c>, <c>&lt;|fim_middle|&gt;</c>, <c>&lt;|fim_suffix|&gt;</c>, and 100276
/// <c>&lt;|endofprompt|&gt;</c> (<see cref="Separator"/>). <see cref="VocabSize"/> is 100277, one more
/// than the largest id, as tiktoken's <c>n_vocab</c>; the ids 100256 and 100261 to 100275 are
/// unassigned: no encoding produces them and <see cref="Decode"/> gives no text for them.</para>
/// <para><see cref="Encode"/> behaves as tiktoken's <c>encode(text, allowed_special="all")</c>: the
/// literal text of a special token (such as <c>&lt;|endoftext|&gt;</c> between documents of a
/// corpus) becomes its special id. <see cref="Decode"/> drops the special ids, joins the bytes of
/// the other tokens and decodes them as UTF-8 with U+FFFD for invalid sequences (a token that holds
/// part of a character, decoded alone, gives U+FFFD).</para>
/// <para>The first use loads the vocabulary (about 0.2 s, a few tens of MB), shared by every instance.
/// Immutable and thread-safe.</para>
/// </remarks>
public sealed class Cl100kTokenizer : ITokenizer
{
    /// <summary>The name this tokenizer is stored under: <c>"cl100k"</c>.</summary>
    public const string TokenizerName = "cl100k";

    /// <summary>The id of <c>&lt;|endoftext|&gt;</c>, 100257.</summary>
    public const int EndOfTextId = 100257;

    /// <summary>The id of <c>&lt;|endofprompt|&gt;</c>, 100276, used as the separator.</summary>
    public const int EndOfPromptId = 100276;

    /// <summary>The number of ids, 100277 (the largest id, 100276, plus one).</summary>
    public const int Size = 100277;

    private static readonly Lazy<TiktokenTokenizer> s_tokenizer = new(
        () => TiktokenTokenizer.CreateForModel("gpt-4"), LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly Lazy<Cl100kTokenizer> s_instance = new(() => new Cl100kTokenizer(), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly TiktokenTokenizer _tokenizer;
    private readonly HashSet<int> _special;

    private Cl100kTokenizer()
    {
        _tokenizer = s_tokenizer.Value;
        _special = [.. _tokenizer.SpecialTokens?.Values ?? []];
        if (!_special.Contains(EndOfTextId) || !_special.Contains(EndOfPromptId) || _special.Any(id => id is < 0 or >= Size))
        {
            throw new InvalidOperationException(
                $"The cl100k vocabulary of Microsoft.ML.Tokenizers has unexpected special ids ({string.Join(", ", _special.Order())}).");
        }
    }

    /// <summary>The shared instance; the first call loads the vocabulary.</summary>
    public static Cl100kTokenizer Instance => s_instance.Value;

    /// <inheritdoc/>
    public string Name => TokenizerName;

    /// <inheritdoc/>
    public int VocabSize => Size;

    /// <inheritdoc/>
    public int EndOfText => EndOfTextId;

    /// <inheritdoc/>
    public int Separator => EndOfPromptId;

    /// <inheritdoc/>
    public int Padding => EndOfTextId;

    /// <inheritdoc/>
    public bool IsSpecial(int id) => _special.Contains(id);

    /// <inheritdoc/>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Length == 0 ? [] : [.. _tokenizer.EncodeToIds(text)];
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        TokenizerChecks.CheckIds(this, ids);
        var kept = new List<int>(ids.Length);
        foreach (var id in ids)
        {
            if (!_special.Contains(id))
            {
                kept.Add(id);
            }
        }
        return kept.Count == 0 ? "" : _tokenizer.Decode(kept);
    }

    /// <summary>Describes the tokenizer.</summary>
    /// <returns><c>Cl100kTokenizer(cl100k, 100277 ids)</c>.</returns>
    public override string ToString() => $"Cl100kTokenizer({Name}, {VocabSize} ids)";
}
