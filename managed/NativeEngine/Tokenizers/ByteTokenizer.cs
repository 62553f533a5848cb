using System.Text;

namespace NativeEngine.Tokenizers;

/// <summary>
/// The built-in tokenizer, named <c>"byte"</c>: one token per UTF-8 byte (ids 0 to 255, the byte's
/// value) and three special ids, <see cref="EndOfTextId"/> (256), <see cref="SeparatorId"/> (257) and
/// <see cref="PaddingId"/> (258); <see cref="VocabSize"/> is 259. Needs no data files.
/// </summary>
/// <remarks>
/// <para>Round trip: <c>Decode(Encode(s)) == s</c> for every well-formed string (any Unicode text,
/// emoji and other characters outside the BMP included). A lone surrogate, which is not Unicode
/// text, is encoded as U+FFFD (bytes EF BF BD).</para>
/// <para><see cref="Encode"/> never produces a special id: the literal text <c>&lt;|endoftext|&gt;</c>
/// is just its 13 bytes. <see cref="Decode"/> drops the special ids and decodes the remaining bytes as
/// UTF-8, replacing every invalid sequence with U+FFFD (any byte sequence decodes without throwing).</para>
/// <para>Immutable and thread-safe; use <see cref="Instance"/>.</para>
/// </remarks>
public sealed class ByteTokenizer : ITokenizer
{
    /// <summary>The name this tokenizer is stored under: <c>"byte"</c>.</summary>
    public const string TokenizerName = "byte";

    /// <summary>The end-of-text id, 256.</summary>
    public const int EndOfTextId = 256;

    /// <summary>The separator id, 257.</summary>
    public const int SeparatorId = 257;

    /// <summary>The padding id, 258.</summary>
    public const int PaddingId = 258;

    /// <summary>The number of ids, 259: the 256 byte values and the three special ids.</summary>
    public const int Size = 259;

    // Replaces invalid sequences with U+FFFD instead of throwing (the default of UTF8Encoding).
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    /// <summary>The shared instance.</summary>
    public static ByteTokenizer Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => TokenizerName;

    /// <inheritdoc/>
    public int VocabSize => Size;

    /// <inheritdoc/>
    public int EndOfText => EndOfTextId;

    /// <inheritdoc/>
    public int Separator => SeparatorId;

    /// <inheritdoc/>
    public int Padding => PaddingId;

    /// <inheritdoc/>
    public bool IsSpecial(int id) => id is >= EndOfTextId and < Size;

    /// <inheritdoc/>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = s_utf8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            ids[i] = bytes[i];
        }
        return ids;
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        TokenizerChecks.CheckIds(this, ids);
        var bytes = new byte[ids.Length];
        var count = 0;
        foreach (var id in ids)
        {
            if (id < EndOfTextId)
            {
                bytes[count++] = (byte)id;
            }
        }
        return s_utf8.GetString(bytes, 0, count);
    }

    /// <summary>Describes the tokenizer.</summary>
    /// <returns><c>ByteTokenizer(byte, 259 ids)</c>.</returns>
    public override string ToString() => $"ByteTokenizer({Name}, {VocabSize} ids)";
}
