namespace NativeEngine.Tokenizers;

/// <summary>
/// Recreates a tokenizer from the name stored in a checkpoint's configuration
/// (<see cref="ITokenizer.Name"/>).
/// </summary>
public static class TokenizerFactory
{
    /// <summary>The names <see cref="Create"/> knows: <c>"byte"</c> and <c>"cl100k"</c>.</summary>
    public static IReadOnlyList<string> KnownNames { get; } = [ByteTokenizer.TokenizerName, Cl100kTokenizer.TokenizerName];

    /// <summary>The tokenizer named <paramref name="name"/> (exact, lowercase).</summary>
    /// <param name="name"><c>"byte"</c> (<see cref="ByteTokenizer"/>) or <c>"cl100k"</c> (<see cref="Cl100kTokenizer"/>).</param>
    /// <returns>The shared instance of that tokenizer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">No tokenizer has that name; the message lists the known names.</exception>
    public static ITokenizer Create(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name switch
        {
            ByteTokenizer.TokenizerName => ByteTokenizer.Instance,
            Cl100kTokenizer.TokenizerName => Cl100kTokenizer.Instance,
            _ => throw new ArgumentException(
                $"Unknown tokenizer '{name}'; the known tokenizers are {string.Join(", ", KnownNames.Select(n => $"'{n}'"))}.", nameof(name)),
        };
    }
}
