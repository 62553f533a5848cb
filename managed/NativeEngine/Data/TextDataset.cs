using NativeEngine.Tokenizers;

namespace NativeEngine.Data;

/// <summary>
/// A language-modelling data set from one text: the text is tokenized once, split into a training part
/// (the first tokens) and a validation part (the last <see cref="TextDatasetOptions.ValidationFraction"/>
/// of them), and batches are random windows of <see cref="TextDatasetOptions.SequenceLength"/> + 1 tokens.
/// </summary>
/// <remarks>
/// <para>Batch rows: a window of T + 1 consecutive tokens starting at a uniformly random position of its part;
/// the inputs are its first T tokens and the targets its last T (the next token at each position), all
/// trained (no <see cref="TokenBatch.IgnoreTarget"/>). Windows never cross from training into validation.</para>
/// <para>Determinism: the window positions of training batch k depend only on (seed, k, batch size), those
/// of validation batch k on (seed, k, batch size) through another stream; so a resumed run sees the same
/// batches, and evaluating on validation batches 0 .. n-1 uses the same windows every time.</para>
/// <para>Memory: the whole text is read, then its tokens are kept (4 bytes each). Immutable and thread-safe.</para>
/// </remarks>
public sealed class TextDataset
{
    private readonly int[] _tokens;
    private readonly int _trainCount;

    private TextDataset(string source, ITokenizer tokenizer, TextDatasetOptions options, int[] tokens)
    {
        Source = source;
        Tokenizer = tokenizer;
        Options = options;
        _tokens = tokens;
        var validation = (int)Math.Ceiling(tokens.Length * options.ValidationFraction);
        _trainCount = tokens.Length - validation;
        var window = options.SequenceLength + 1;
        if (_trainCount < window || validation < window)
        {
            throw new InvalidDataException(
                $"{source}: too short: {tokens.Length} tokens ({tokenizer.Name}) give {_trainCount} for training and {validation} for validation, " +
                $"but each part needs at least one window of {window} tokens (sequence length {options.SequenceLength} + 1); " +
                "use a longer text, a shorter sequence length or another validation fraction.");
        }
    }

    /// <summary>Tokenizes a UTF-8 text file (a byte order mark is skipped; invalid UTF-8 becomes U+FFFD).</summary>
    /// <param name="path">The file.</param>
    /// <param name="tokenizer">The tokenizer.</param>
    /// <param name="options">The options; <see langword="null"/> for the defaults.</param>
    /// <returns>The data set.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is empty, or too short for one window in each part
    /// (the message gives the counts).</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static TextDataset FromFile(string path, ITokenizer tokenizer, TextDatasetOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options = Check(options);
        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
        {
            throw new FileNotFoundException(
                Directory.Exists(fullPath) ? $"{fullPath}: is a directory, not a text file." : $"{fullPath}: the text file does not exist.",
                fullPath);
        }
        var text = File.ReadAllText(fullPath, System.Text.Encoding.UTF8);
        return Create(fullPath, text, tokenizer, options);
    }

    /// <summary>Tokenizes a text held in memory.</summary>
    /// <param name="text">The text.</param>
    /// <param name="tokenizer">The tokenizer.</param>
    /// <param name="options">The options; <see langword="null"/> for the defaults.</param>
    /// <returns>The data set.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="InvalidDataException">The text is empty, or too short for one window in each part.</exception>
    public static TextDataset FromText(string text, ITokenizer tokenizer, TextDatasetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(tokenizer);
        return Create("text", text, tokenizer, Check(options));
    }

    /// <summary>Where the text came from: the file's full path, or <c>"text"</c>.</summary>
    public string Source { get; }

    /// <summary>The tokenizer of the text (its <see cref="ITokenizer.VocabSize"/> is the model's).</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>The options.</summary>
    public TextDatasetOptions Options { get; }

    /// <summary>The positions of every batch row (T).</summary>
    public int SequenceLength => Options.SequenceLength;

    /// <summary>The training tokens: the first part of the text.</summary>
    public ReadOnlyMemory<int> TrainTokens => _tokens.AsMemory(0, _trainCount);

    /// <summary>The validation tokens: the last part of the text.</summary>
    public ReadOnlyMemory<int> ValidationTokens => _tokens.AsMemory(_trainCount);

    /// <summary>Training batch <paramref name="step"/>: <paramref name="batchSize"/> random windows of the training tokens.</summary>
    /// <param name="step">The batch index, &gt;= 0.</param>
    /// <param name="batchSize">Rows, &gt;= 1.</param>
    /// <returns>A [<paramref name="batchSize"/>, <see cref="SequenceLength"/>] batch.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public TokenBatch GetTrainingBatch(long step, int batchSize) =>
        Windows(TrainTokens.Span, RandomStreams.TextTraining, step, batchSize);

    /// <summary>Validation batch <paramref name="index"/>: <paramref name="batchSize"/> random windows of the
    /// validation tokens.</summary>
    /// <param name="index">The batch index, &gt;= 0.</param>
    /// <param name="batchSize">Rows, &gt;= 1.</param>
    /// <returns>A [<paramref name="batchSize"/>, <see cref="SequenceLength"/>] batch.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public TokenBatch GetValidationBatch(long index, int batchSize) =>
        Windows(ValidationTokens.Span, RandomStreams.TextValidation, index, batchSize);

    private TokenBatch Windows(ReadOnlySpan<int> tokens, ulong stream, long index, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var length = SequenceLength;
        var inputs = new int[batchSize * length];
        var targets = new int[batchSize * length];
        var random = new DeterministicRandom(Options.Seed, stream, index);
        for (var row = 0; row < batchSize; row++)
        {
            var start = (int)random.NextInt64(tokens.Length - length);
            tokens.Slice(start, length).CopyTo(inputs.AsSpan(row * length));
            tokens.Slice(start + 1, length).CopyTo(targets.AsSpan(row * length));
        }
        return new TokenBatch(batchSize, length, inputs, targets);
    }

    private static TextDataset Create(string source, string text, ITokenizer tokenizer, TextDatasetOptions options)
    {
        if (text.Length == 0)
        {
            throw new InvalidDataException($"{source}: the text is empty.");
        }
        return new TextDataset(source, tokenizer, options, tokenizer.Encode(text));
    }

    private static TextDatasetOptions Check(TextDatasetOptions? options)
    {
        options ??= new TextDatasetOptions();
        if (options.SequenceLength < 1)
        {
            throw new ArgumentException($"SequenceLength is {options.SequenceLength}; it must be >= 1.", nameof(options));
        }
        if (!(options.ValidationFraction > 0 && options.ValidationFraction < 1))
        {
            throw new ArgumentException(
                string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"ValidationFraction is {options.ValidationFraction}; it must be strictly between 0 and 1."), nameof(options));
        }
        return options;
    }
}
