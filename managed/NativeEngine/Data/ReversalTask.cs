using System.Text;

namespace NativeEngine.Data;

/// <summary>
/// The built-in task of the CLI: reverse a random sequence of symbols, which a decoder-only model can
/// learn only through attention. Examples, batches, a held-out set and exact-match scoring, all
/// determined by <see cref="ReversalTaskOptions.Seed"/>.
/// </summary>
/// <remarks>
/// <para>Vocabulary (<see cref="VocabSize"/> = alphabet + 3): symbols <c>0 .. A-1</c>, then
/// <see cref="SeparatorId"/> = A, <see cref="EndId"/> = A + 1, <see cref="PaddingId"/> = A + 2.</para>
/// <para>Layout of an example of length L, as one sequence <c>x1 .. xL SEP xL .. x1 END</c> (2L + 2 ids): a
/// batch row holds its first 2L + 1 ids as inputs and the following id at each position as the target;
/// targets are <see cref="TokenBatch.IgnoreTarget"/> on the prompt (positions 0 to L - 1, whose next ids
/// are the remaining symbols and SEP, which the model is given), so the L + 1 trained positions are
/// L to 2L, with targets <c>xL .. x1 END</c>. Rows are padded to <see cref="SequenceLength"/>
/// (2 <see cref="ReversalTaskOptions.MaxLength"/> + 1) with <see cref="PaddingId"/> inputs and ignored
/// targets, so every batch has the same shape.</para>
/// <para>Determinism: example sequences come from <c>DeterministicRandom</c> (SplitMix64), whose output
/// depends on this code only. The examples of training batch k depend only on (seed, k, batch size), so a
/// resumed run sees the same batches. The held-out set is drawn from its own stream of the seed, and is
/// disjoint from training by construction: a training draw that equals a held-out sequence is drawn
/// again. Held-out sequences are distinct from each other.</para>
/// <para>Scoring: a model answers an example right when its greedy generation after
/// <see cref="ReversalExample.Prompt"/> is exactly <see cref="ReversalExample.Answer"/> (checked by
/// <see cref="IsExactMatch"/>). With teacher forcing, the argmax at every trained position of a row is
/// right exactly when greedy generation is right, so <see cref="TokenBatch.ScoreExactMatch"/> on the
/// argmax of one forward pass gives the same score without generating.</para>
/// <para>Immutable and thread-safe.</para>
/// </remarks>
public sealed class ReversalTask
{
    private const int MaxDrawsPerExample = 1_000_000;

    private readonly HashSet<string> _heldOutKeys;
    private readonly ReversalExample[] _heldOut;

    /// <summary>Creates the task and draws its held-out set.</summary>
    /// <param name="options">The options; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentException">An option is out of range (the message names it and its range).</exception>
    public ReversalTask(ReversalTaskOptions? options = null)
    {
        Options = options ??= new ReversalTaskOptions();
        if (options.AlphabetSize is < 2 or > char.MaxValue)
        {
            throw new ArgumentException($"AlphabetSize is {options.AlphabetSize}; it must be 2 to {(int)char.MaxValue}.", nameof(options));
        }
        if (options.MinLength < 1 || options.MaxLength < options.MinLength || options.MaxLength > 4096)
        {
            throw new ArgumentException(
                $"The lengths are {options.MinLength} to {options.MaxLength}; MinLength must be >= 1 and MaxLength from MinLength to 4096.",
                nameof(options));
        }
        var distinct = DistinctSequences(options);
        if (options.HeldOutCount < 0 || options.HeldOutCount > distinct / 2)
        {
            throw new ArgumentException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"HeldOutCount is {options.HeldOutCount}; it must be 0 to {Math.Floor(distinct / 2)}, half of the {distinct} distinct sequences " +
                $"of these lengths and alphabet, so that training keeps enough examples."), nameof(options));
        }
        AlphabetSize = options.AlphabetSize;
        _heldOutKeys = new HashSet<string>(StringComparer.Ordinal);
        var heldOut = new List<ReversalExample>(options.HeldOutCount);
        var random = new DeterministicRandom(options.Seed, RandomStreams.ReversalHeldOut, 0);
        var budget = 100L * options.HeldOutCount + MaxDrawsPerExample;
        while (heldOut.Count < options.HeldOutCount)
        {
            if (--budget < 0)
            {
                throw new ArgumentException(
                    $"Could not draw {options.HeldOutCount} distinct held-out sequences; lower HeldOutCount or allow longer sequences.", nameof(options));
            }
            var symbols = Draw(ref random);
            if (_heldOutKeys.Add(Key(symbols)))
            {
                heldOut.Add(NewExample(symbols));
            }
        }
        _heldOut = [.. heldOut];
    }

    /// <summary>The options the task was created with.</summary>
    public ReversalTaskOptions Options { get; }

    /// <summary>The number of symbols.</summary>
    public int AlphabetSize { get; }

    /// <summary>The separator id, after the prompt: <see cref="AlphabetSize"/>.</summary>
    public int SeparatorId => AlphabetSize;

    /// <summary>The end id, after the reversed symbols: <see cref="AlphabetSize"/> + 1.</summary>
    public int EndId => AlphabetSize + 1;

    /// <summary>The padding id: <see cref="AlphabetSize"/> + 2.</summary>
    public int PaddingId => AlphabetSize + 2;

    /// <summary>The number of ids: <see cref="AlphabetSize"/> + 3 (a model's vocabulary size).</summary>
    public int VocabSize => AlphabetSize + 3;

    /// <summary>The positions of every batch row: 2 <see cref="ReversalTaskOptions.MaxLength"/> + 1. A model's
    /// context must hold at least this many positions.</summary>
    public int SequenceLength => 2 * Options.MaxLength + 1;

    /// <summary>The held-out examples, in a fixed order; disjoint from every training example.</summary>
    public IReadOnlyList<ReversalExample> HeldOut => _heldOut;

    /// <summary>The examples of training batch <paramref name="step"/>.</summary>
    /// <param name="step">The batch index, &gt;= 0.</param>
    /// <param name="batchSize">The number of examples, &gt;= 1.</param>
    /// <returns>New examples that depend only on (seed, <paramref name="step"/>, <paramref name="batchSize"/>).</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public IReadOnlyList<ReversalExample> GetTrainingExamples(long step, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var random = new DeterministicRandom(Options.Seed, RandomStreams.ReversalTraining, step);
        var examples = new ReversalExample[batchSize];
        for (var i = 0; i < batchSize; i++)
        {
            var draws = 0;
            int[] symbols;
            do
            {
                if (++draws > MaxDrawsPerExample)
                {
                    throw new InvalidOperationException("Almost every sequence is held out; lower HeldOutCount.");
                }
                symbols = Draw(ref random);
            }
            while (_heldOutKeys.Contains(Key(symbols)));
            examples[i] = NewExample(symbols);
        }
        return examples;
    }

    /// <summary>Training batch <paramref name="step"/>: <see cref="CreateBatch"/> of
    /// <see cref="GetTrainingExamples"/>.</summary>
    /// <param name="step">The batch index, &gt;= 0.</param>
    /// <param name="batchSize">The number of rows, &gt;= 1.</param>
    /// <returns>A [<paramref name="batchSize"/>, <see cref="SequenceLength"/>] batch.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public TokenBatch GetTrainingBatch(long step, int batchSize) => CreateBatch(GetTrainingExamples(step, batchSize));

    /// <summary>The held-out examples <c>[index * batchSize, (index + 1) * batchSize)</c> (fewer in the last batch)
    /// as a batch.</summary>
    /// <param name="index">0 to <see cref="HeldOutBatchCount"/> - 1.</param>
    /// <param name="batchSize">Rows per batch, &gt;= 1.</param>
    /// <returns>The batch.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public TokenBatch GetHeldOutBatch(int index, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, HeldOutBatchCount(batchSize));
        var start = index * batchSize;
        return CreateBatch(_heldOut[start..Math.Min(_heldOut.Length, start + batchSize)]);
    }

    /// <summary>The number of held-out batches of <paramref name="batchSize"/> rows (the last may be smaller).</summary>
    /// <param name="batchSize">Rows per batch, &gt;= 1.</param>
    /// <returns>The count.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> is below 1.</exception>
    public int HeldOutBatchCount(int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        return (_heldOut.Length + batchSize - 1) / batchSize;
    }

    /// <summary>Lays examples out as a batch (see the remarks of <see cref="ReversalTask"/>), padded to
    /// <see cref="SequenceLength"/>.</summary>
    /// <param name="examples">One or more examples of this task.</param>
    /// <returns>A [<c>examples.Count</c>, <see cref="SequenceLength"/>] batch.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="examples"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="examples"/> is empty, or an example does not fit this task.</exception>
    public TokenBatch CreateBatch(IReadOnlyList<ReversalExample> examples)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0)
        {
            throw new ArgumentException("A batch needs at least one example.", nameof(examples));
        }
        var width = SequenceLength;
        var inputs = new int[examples.Count * width];
        var targets = new int[examples.Count * width];
        Array.Fill(inputs, PaddingId);
        Array.Fill(targets, TokenBatch.IgnoreTarget);
        for (var row = 0; row < examples.Count; row++)
        {
            var example = examples[row] ?? throw new ArgumentException($"examples[{row}] is null.", nameof(examples));
            var symbols = example.SymbolSpan;
            var length = symbols.Length;
            if (length > Options.MaxLength || example.Prompt[^1] != SeparatorId || example.Answer[^1] != EndId
                || symbols.ContainsAnyExceptInRange(0, AlphabetSize - 1))
            {
                throw new ArgumentException($"examples[{row}] does not belong to this task (length {length}, alphabet {AlphabetSize}).", nameof(examples));
            }
            // The sequence x1..xL SEP xL..x1 END: inputs are its first 2L+1 ids, targets the next id at each.
            var answer = example.AnswerSpan;
            var input = inputs.AsSpan(row * width, width);
            var target = targets.AsSpan(row * width, width);
            symbols.CopyTo(input);
            input[length] = SeparatorId;
            answer[..length].CopyTo(input[(length + 1)..]);
            answer.CopyTo(target[length..]);
        }
        return new TokenBatch(examples.Count, width, inputs, targets);
    }

    /// <summary>Whether a greedy generation answers an example exactly: <paramref name="generated"/> (the ids
    /// generated after <see cref="ReversalExample.Prompt"/>) starts with <see cref="ReversalExample.Answer"/>,
    /// the reversed symbols followed by <see cref="EndId"/>; anything after the end id is ignored.</summary>
    /// <param name="example">The example.</param>
    /// <param name="generated">The generated ids.</param>
    /// <returns>Whether the answer is exact.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="example"/> is null.</exception>
    public bool IsExactMatch(ReversalExample example, ReadOnlySpan<int> generated)
    {
        ArgumentNullException.ThrowIfNull(example);
        return generated.StartsWith(example.AnswerSpan);
    }

    /// <summary>Scores greedy generations of several examples with <see cref="IsExactMatch"/>.</summary>
    /// <param name="examples">The examples.</param>
    /// <param name="generated">The ids generated after each example's prompt, one list per example.</param>
    /// <returns>The exact matches.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The counts differ.</exception>
    public ExactMatchScore Score(IReadOnlyList<ReversalExample> examples, IReadOnlyList<int[]> generated)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(generated);
        if (examples.Count != generated.Count)
        {
            throw new ArgumentException($"{examples.Count} examples but {generated.Count} generations.", nameof(generated));
        }
        var correct = 0;
        for (var i = 0; i < examples.Count; i++)
        {
            correct += IsExactMatch(examples[i], generated[i] ?? []) ? 1 : 0;
        }
        return new ExactMatchScore(correct, examples.Count);
    }

    /// <summary>Renders ids for people: symbols as letters (a, b, ... when the alphabet has at most 26) or
    /// numbers, the separator as <c>|</c>, the end as <c>$</c>, padding as <c>_</c>, and any other id as
    /// <c>&lt;id?&gt;</c>, separated by spaces.</summary>
    /// <param name="ids">The ids.</param>
    /// <returns>Such as <c>"c a f | f a c $"</c>.</returns>
    public string Format(ReadOnlySpan<int> ids)
    {
        var text = new StringBuilder();
        foreach (var id in ids)
        {
            if (text.Length > 0)
            {
                text.Append(' ');
            }
            if (id >= 0 && id < AlphabetSize)
            {
                if (AlphabetSize <= 26)
                {
                    text.Append((char)('a' + id));
                }
                else
                {
                    text.Append(id.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            else
            {
                text.Append(id == SeparatorId ? "|" : id == EndId ? "$" : id == PaddingId ? "_"
                    : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"<{id}?>"));
            }
        }
        return text.ToString();
    }

    private int[] Draw(ref DeterministicRandom random)
    {
        var length = random.NextInt(Options.MinLength, Options.MaxLength);
        var symbols = new int[length];
        for (var i = 0; i < length; i++)
        {
            symbols[i] = (int)random.NextInt64(AlphabetSize);
        }
        return symbols;
    }

    private ReversalExample NewExample(int[] symbols) => new(symbols, SeparatorId, EndId);

    private static string Key(int[] symbols) => string.Create(symbols.Length, symbols, static (chars, s) =>
    {
        for (var i = 0; i < s.Length; i++)
        {
            chars[i] = (char)s[i];
        }
    });

    // The number of distinct sequences of the allowed lengths, saturating at double's range.
    private static double DistinctSequences(ReversalTaskOptions options)
    {
        double total = 0;
        for (var length = options.MinLength; length <= options.MaxLength; length++)
        {
            total += Math.Pow(options.AlphabetSize, length);
        }
        return total;
    }
}
