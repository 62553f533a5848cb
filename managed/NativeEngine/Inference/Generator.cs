namespace NativeEngine.Inference;

/// <summary>
/// Autoregressive generation over a <see cref="Modules.KeyValueCache"/>: the prompt is run once (prefill),
/// then each new token alone, attending over the cached keys and values; the next token is chosen on the host
/// from the last position's logits (<see cref="TokenSampler"/>).
/// </summary>
/// <remarks>
/// <para>Generation ends at a stop token (included in the result), after
/// <see cref="GenerationOptions.MaxNewTokens"/> tokens, or when the sequence fills the model's
/// <see cref="IAutoregressiveModel.MaxSequenceLength"/> positions (the last token is chosen from the logits of the
/// last position, so prompt + result may hold one token more than that).</para>
/// <para>A model with dropout must be in evaluation mode. Every tensor of a generation is freed before
/// <see cref="Generate"/> returns. One generation at a time per model (one thread, like its context).</para>
/// </remarks>
public sealed class Generator
{
    private readonly IAutoregressiveModel _model;

    /// <summary>Creates a generator for <paramref name="model"/>.</summary>
    /// <param name="model">The model; the generator does not own it.</param>
    /// <exception cref="ArgumentNullException"><paramref name="model"/> is null.</exception>
    public Generator(IAutoregressiveModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
    }

    /// <summary>Generates tokens after <paramref name="prompt"/>.</summary>
    /// <param name="prompt">The prompt, 1 to <see cref="IAutoregressiveModel.MaxSequenceLength"/> token ids.</param>
    /// <param name="options">The options; null for the defaults (greedy, 64 tokens).</param>
    /// <param name="onToken">Called with each token as soon as it is chosen (streaming); or null.</param>
    /// <param name="cancellationToken">Checked before each token.</param>
    /// <returns>The generated tokens and why generation ended.</returns>
    /// <exception cref="ArgumentException">The prompt is empty or too long, or an option is out of range.</exception>
    /// <exception cref="NativeEngineException">A prompt id is out of range.</exception>
    /// <exception cref="OperationCanceledException">The token was canceled.</exception>
    public GenerationResult Generate(ReadOnlySpan<int> prompt, GenerationOptions? options = null, Action<int>? onToken = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new GenerationOptions();
        options.Validate(_model.VocabularySize);
        var maxLength = _model.MaxSequenceLength;
        if (prompt.IsEmpty || prompt.Length > maxLength)
        {
            throw new ArgumentException($"The prompt has {prompt.Length} tokens; it must have 1 to {maxLength} (the model's maximum sequence length).",
                nameof(prompt));
        }
        if (options.MaxNewTokens == 0)
        {
            return new GenerationResult([], FinishReason.MaxNewTokens);
        }
        var stops = options.StopTokens.ToHashSet();
        var sampler = new TokenSampler(options);
        var capacity = (int)Math.Min(maxLength, (long)prompt.Length + options.MaxNewTokens - 1);
        using var cache = _model.CreateCache(1, Math.Max(capacity, prompt.Length));
        var tokens = new List<int>();
        var logits = Step(prompt, cache);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var token = sampler.Next(logits);
            tokens.Add(token);
            onToken?.Invoke(token);
            if (stops.Contains(token))
            {
                return new GenerationResult([.. tokens], FinishReason.StopToken);
            }
            if (tokens.Count == options.MaxNewTokens)
            {
                return new GenerationResult([.. tokens], FinishReason.MaxNewTokens);
            }
            if (cache.Length == cache.MaxLength)
            {
                return new GenerationResult([.. tokens], FinishReason.MaxSequenceLength);
            }
            logits = Step([token], cache);
        }
    }

    private float[] Step(ReadOnlySpan<int> ids, Modules.KeyValueCache cache)
    {
        using var scope = new TensorScope();
        var input = Tensor.FromArray(_model.Context, ids, 1, ids.Length);
        return _model.NextTokenLogits(input, cache).ToArray<float>();
    }
}
