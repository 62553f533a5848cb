namespace NativeEngine.Tokenizers;

/// <summary>
/// Maps text to token ids and back, for training and generation. Implementations:
/// <see cref="ByteTokenizer"/> ("byte") and <see cref="Cl100kTokenizer"/> ("cl100k"); recreate one
/// from its <see cref="Name"/> with <see cref="TokenizerFactory.Create"/>.
/// </summary>
/// <remarks>
/// <para>Ids: every id a tokenizer produces or accepts lies in <c>[0, VocabSize)</c>, so a model whose
/// output layer has <see cref="VocabSize"/> classes can emit any of them.</para>
/// <para>Special ids: <see cref="EndOfText"/>, <see cref="Separator"/> and <see cref="Padding"/> carry
/// no text. <see cref="IsSpecial"/> tells them (and any other special id of the vocabulary) apart.
/// Their meaning for training and generation: <see cref="EndOfText"/> ends a document or an answer
/// (generation stops on it); <see cref="Separator"/> separates a prompt from its answer;
/// <see cref="Padding"/> fills batch rows up to a common length and is never a training target
/// (its positions carry the target -1). Two of them may share an id (cl100k pads with its
/// end-of-text token).</para>
/// <para><see cref="Decode"/> drops special ids (they produce no text), joins the bytes of the other
/// tokens and decodes them as UTF-8; a byte sequence that is not valid UTF-8 (a token sequence cut
/// in the middle of a character, or arbitrary ids) gives U+FFFD replacement characters and never
/// throws. An id outside <c>[0, VocabSize)</c> throws <see cref="ArgumentOutOfRangeException"/>.</para>
/// <para>Threading: implementations are immutable and safe to use from several threads at once.</para>
/// </remarks>
public interface ITokenizer
{
    /// <summary>The name that <see cref="TokenizerFactory.Create"/> recreates this tokenizer from, such as
    /// <c>"byte"</c> or <c>"cl100k"</c>; store it in a checkpoint's configuration.</summary>
    string Name { get; }

    /// <summary>The number of ids: every id is in <c>[0, VocabSize)</c>, special ids included. The
    /// size of a model's embedding table and output layer.</summary>
    int VocabSize { get; }

    /// <summary>The special id that ends a document or an answer; generation stops on it.</summary>
    int EndOfText { get; }

    /// <summary>The special id between a prompt and its answer.</summary>
    int Separator { get; }

    /// <summary>The special id that fills batch rows up to a common length; never a training target.</summary>
    int Padding { get; }

    /// <summary>Whether <paramref name="id"/> is a special id (no text; <see cref="Decode"/> drops it).</summary>
    /// <param name="id">Any integer.</param>
    /// <returns><see langword="true"/> for the special ids of the vocabulary, <see langword="false"/>
    /// otherwise (ids outside the vocabulary included).</returns>
    bool IsSpecial(int id);

    /// <summary>Encodes text to ids.</summary>
    /// <param name="text">The text; may be empty (no ids).</param>
    /// <returns>A new array of ids in <c>[0, VocabSize)</c>. Whether the literal text of a special token
    /// (such as <c>&lt;|endoftext|&gt;</c>) becomes its special id depends on the tokenizer: see its
    /// documentation.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    int[] Encode(string text);

    /// <summary>Decodes ids to text: special ids are dropped, invalid UTF-8 becomes U+FFFD.</summary>
    /// <param name="ids">Ids in <c>[0, VocabSize)</c>; may be empty (the empty string).</param>
    /// <returns>The text.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside <c>[0, VocabSize)</c>; the message
    /// names its index and value.</exception>
    string Decode(ReadOnlySpan<int> ids);
}
