namespace NativeEngine.Data;

/// <summary>One example of <see cref="ReversalTask"/>: a sequence of symbols and its reverse.</summary>
public sealed class ReversalExample
{
    private readonly int[] _symbols;
    private readonly int[] _prompt;
    private readonly int[] _answer;

    internal ReversalExample(int[] symbols, int separatorId, int endId)
    {
        _symbols = symbols;
        _prompt = [.. symbols, separatorId];
        var answer = new int[symbols.Length + 1];
        for (var i = 0; i < symbols.Length; i++)
        {
            answer[i] = symbols[symbols.Length - 1 - i];
        }
        answer[^1] = endId;
        _answer = answer;
    }

    /// <summary>The symbols, each in <c>[0, AlphabetSize)</c>.</summary>
    public IReadOnlyList<int> Symbols => _symbols;

    /// <summary>What a model is given to generate from: the symbols, then the separator.</summary>
    public IReadOnlyList<int> Prompt => _prompt;

    /// <summary>What a model must generate after the prompt: the symbols reversed, then the end id.</summary>
    public IReadOnlyList<int> Answer => _answer;

    /// <summary>The number of symbols.</summary>
    public int Length => _symbols.Length;

    internal ReadOnlySpan<int> SymbolSpan => _symbols;

    internal ReadOnlySpan<int> AnswerSpan => _answer;
}
