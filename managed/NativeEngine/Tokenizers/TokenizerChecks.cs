namespace NativeEngine.Tokenizers;

/// <summary>Argument checks shared by the tokenizers.</summary>
internal static class TokenizerChecks
{
    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for the first id outside the vocabulary.</summary>
    internal static void CheckIds(ITokenizer tokenizer, ReadOnlySpan<int> ids)
    {
        var size = tokenizer.VocabSize;
        for (var i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)size)
            {
                throw new ArgumentOutOfRangeException(nameof(ids),
                    $"ids[{i}] = {ids[i]} is outside the vocabulary [0, {size}) of tokenizer '{tokenizer.Name}'.");
            }
        }
    }
}
