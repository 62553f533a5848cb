using System.Globalization;

namespace NativeEngine.Inference;

/// <summary>How <see cref="Generator"/> chooses tokens. The defaults: up to 64 new tokens, greedy, no stop
/// tokens.</summary>
public sealed record GenerationOptions
{
    /// <summary>The most tokens to generate, &gt;= 0. Default 64.</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Divides the logits before sampling, finite and &gt;= 0; 0 (the default) is greedy decoding (the
    /// arg max, the lowest id among equal logits), which ignores <see cref="TopK"/>, <see cref="TopP"/> and
    /// <see cref="Seed"/>.</summary>
    public float Temperature { get; init; }

    /// <summary>Samples among the <see cref="TopK"/> most likely tokens only, &gt;= 0; 0 (the default) keeps every
    /// token. Ties are broken by the lower id, so 1 is greedy decoding.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: samples among the fewest most likely tokens whose probabilities (after
    /// <see cref="TopK"/>) sum to at least <see cref="TopP"/>, in (0, 1]. Default 1 (every token).</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>The seed of the sampling: a seed and a prompt give the same tokens on every run.</summary>
    public ulong Seed { get; init; }

    /// <summary>Tokens that end the generation; the stop token is included in the result. Default none.</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];

    /// <summary>Checks every option.</summary>
    /// <param name="vocabularySize">The model's V, which stop tokens must lie below.</param>
    /// <exception cref="ArgumentException">An option is out of range; the message names it and its range.</exception>
    public void Validate(int vocabularySize)
    {
        Require(MaxNewTokens >= 0, nameof(MaxNewTokens), MaxNewTokens, ">= 0");
        Require(float.IsFinite(Temperature) && Temperature >= 0f, nameof(Temperature), Temperature, "finite and >= 0 (0 is greedy)");
        Require(TopK >= 0, nameof(TopK), TopK, ">= 0 (0 keeps every token)");
        Require(TopP > 0f && TopP <= 1f, nameof(TopP), TopP, "in (0, 1]");
        ArgumentNullException.ThrowIfNull(StopTokens, nameof(StopTokens));
        foreach (var token in StopTokens)
        {
            Require(token >= 0 && token < vocabularySize, nameof(StopTokens), token, $"a token id in [0, {vocabularySize})");
        }
    }

    private static void Require(bool condition, string option, object value, string expected)
    {
        if (!condition)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"GenerationOptions.{option} is {value}; it must be {expected}."), option);
        }
    }
}

/// <summary>Why a generation ended.</summary>
public enum FinishReason
{
    /// <summary>A stop token was generated (it is the last token of the result).</summary>
    StopToken,

    /// <summary><see cref="GenerationOptions.MaxNewTokens"/> tokens were generated.</summary>
    MaxNewTokens,

    /// <summary>The sequence reached the model's maximum length.</summary>
    MaxSequenceLength,
}

/// <summary>The tokens of a generation and why it ended.</summary>
/// <param name="Tokens">The generated tokens, after the prompt (a stop token included).</param>
/// <param name="FinishReason">Why the generation ended.</param>
public sealed record GenerationResult(int[] Tokens, FinishReason FinishReason);
