using NativeEngine.Data;

namespace NativeEngine.Tests;

public sealed class ReversalTaskTests
{
    private static readonly ReversalTask s_task = new(new ReversalTaskOptions { Seed = 1234 });

    [Fact]
    public void TheDefaultsAreSmallAndTheVocabularyFollowsTheAlphabet()
    {
        var task = new ReversalTask();

        Assert.Equal((16, 4, 12, 512, 0L), (task.Options.AlphabetSize, task.Options.MinLength, task.Options.MaxLength, task.Options.HeldOutCount, task.Options.Seed));
        Assert.Equal((16, 17, 18, 19), (task.SeparatorId, task.EndId, task.PaddingId, task.VocabSize));
        Assert.Equal(25, task.SequenceLength);
        Assert.Equal(512, task.HeldOut.Count);
    }

    [Fact]
    public void TheSameSeedAndStepGiveTheSameBatch()
    {
        var again = new ReversalTask(new ReversalTaskOptions { Seed = 1234 });

        for (var step = 0L; step < 5; step++)
        {
            var a = s_task.GetTrainingBatch(step, 8);
            var b = again.GetTrainingBatch(step, 8);
            Assert.Equal(a.Inputs, b.Inputs);
            Assert.Equal(a.Targets, b.Targets);
        }
        // Order of requests does not matter: batch k depends on (seed, k) only.
        Assert.Equal(s_task.GetTrainingBatch(1_000_000, 4).Inputs, again.GetTrainingBatch(1_000_000, 4).Inputs);
    }

    [Fact]
    public void TheSequenceOfTheFirstBatchIsPinned()
    {
        // Guards against an accidental change of the generator (resumed runs rely on it).
        var examples = s_task.GetTrainingExamples(0, 2);

        Assert.Equal(Expected0, string.Join(" / ", examples.Select(e => s_task.Format([.. e.Symbols]))));
    }

    private const string Expected0 = "b n d p n p p h g k i / o b p d i";

    [Fact]
    public void DifferentStepsOrSeedsGiveDifferentBatches()
    {
        var other = new ReversalTask(new ReversalTaskOptions { Seed = 1235 });

        Assert.NotEqual(s_task.GetTrainingBatch(0, 8).Inputs, s_task.GetTrainingBatch(1, 8).Inputs);
        Assert.NotEqual(s_task.GetTrainingBatch(0, 8).Inputs, other.GetTrainingBatch(0, 8).Inputs);
        Assert.NotEqual(s_task.HeldOut.Select(e => e.Symbols.ToArray()), other.HeldOut.Select(e => e.Symbols.ToArray()));
    }

    [Fact]
    public void ARowIsPromptSeparatorReversedEndWithTargetsOnlyOnTheAnswer()
    {
        var examples = s_task.GetTrainingExamples(3, 16);
        var batch = s_task.CreateBatch(examples);

        Assert.Equal((16, 25), (batch.BatchSize, batch.SequenceLength));
        for (var row = 0; row < examples.Count; row++)
        {
            var symbols = examples[row].Symbols.ToArray();
            var length = symbols.Length;
            Assert.InRange(length, 4, 12);
            Assert.All(symbols, s => Assert.InRange(s, 0, 15));
            var reversed = symbols.Reverse().ToArray();
            var input = batch.InputRow(row).ToArray();
            var target = batch.TargetRow(row).ToArray();

            // Inputs: x1..xL SEP xL..x1, then padding.
            Assert.Equal([.. symbols, s_task.SeparatorId, .. reversed], input[..(2 * length + 1)]);
            Assert.All(input[(2 * length + 1)..], id => Assert.Equal(s_task.PaddingId, id));
            // Targets: ignored on the prompt, then xL..x1 END (the next token at each position), then ignored padding.
            Assert.All(target[..length], t => Assert.Equal(TokenBatch.IgnoreTarget, t));
            Assert.Equal([.. reversed, s_task.EndId], target[length..(2 * length + 1)]);
            Assert.All(target[(2 * length + 1)..], t => Assert.Equal(TokenBatch.IgnoreTarget, t));
            // The next-token relation holds wherever a target is trained.
            for (var t = length; t < 2 * length; t++)
            {
                Assert.Equal(input[t + 1], target[t]);
            }
            Assert.Equal(examples[row].Prompt, [.. symbols, s_task.SeparatorId]);
            Assert.Equal(examples[row].Answer, [.. reversed, s_task.EndId]);
        }
        Assert.Equal(examples.Sum(e => e.Length + 1), batch.TargetCount);
    }

    [Fact]
    public void TheHeldOutSetIsDistinctAndDisjointFromTraining()
    {
        var heldOut = s_task.HeldOut.Select(e => string.Join(",", e.Symbols)).ToHashSet();
        Assert.Equal(s_task.HeldOut.Count, heldOut.Count);

        // A tiny space makes collisions certain if the exclusion did not work: 2 symbols, lengths 3..4
        // = 24 sequences, 12 of them held out.
        var tiny = new ReversalTask(new ReversalTaskOptions { AlphabetSize = 2, MinLength = 3, MaxLength = 4, HeldOutCount = 12, Seed = 5 });
        var tinyHeldOut = tiny.HeldOut.Select(e => string.Join(",", e.Symbols)).ToHashSet();
        Assert.Equal(12, tinyHeldOut.Count);
        for (var step = 0; step < 200; step++)
        {
            foreach (var example in tiny.GetTrainingExamples(step, 8))
            {
                Assert.DoesNotContain(string.Join(",", example.Symbols), tinyHeldOut);
            }
        }
        for (var step = 0; step < 50; step++)
        {
            foreach (var example in s_task.GetTrainingExamples(step, 32))
            {
                Assert.DoesNotContain(string.Join(",", example.Symbols), heldOut);
            }
        }
    }

    [Fact]
    public void HeldOutBatchesCoverTheHeldOutSetInOrder()
    {
        var count = s_task.HeldOutBatchCount(100);
        Assert.Equal(6, count);

        var last = s_task.GetHeldOutBatch(5, 100);
        Assert.Equal(12, last.BatchSize);
        Assert.Equal(s_task.CreateBatch([s_task.HeldOut[500]]).Inputs, last.InputRow(0).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => s_task.GetHeldOutBatch(6, 100));
    }

    [Fact]
    public void ExactMatchAcceptsOnlyTheReversedSymbolsFollowedByEnd()
    {
        var example = s_task.HeldOut[0];
        var answer = example.Answer.ToArray();

        Assert.True(s_task.IsExactMatch(example, answer));
        Assert.True(s_task.IsExactMatch(example, [.. answer, 3, 3])); // after END: ignored
        Assert.False(s_task.IsExactMatch(example, answer[..^1])); // no END
        Assert.False(s_task.IsExactMatch(example, example.Symbols.ToArray())); // not reversed (lengths >= 4 make it differ)
        var wrong = answer.ToArray();
        wrong[1] = (wrong[1] + 1) % 16;
        Assert.False(s_task.IsExactMatch(example, wrong));
        Assert.False(s_task.IsExactMatch(example, []));

        var score = s_task.Score([example, s_task.HeldOut[1]], [answer, []]);
        Assert.Equal(new ExactMatchScore(1, 2), score);
        Assert.Equal(0.5, score.Accuracy);
    }

    [Fact]
    public void TeacherForcedExactMatchScoresRowsOnTheirTrainedPositionsOnly()
    {
        var batch = s_task.GetTrainingBatch(0, 4);
        var predictions = batch.Targets.Select(t => t == TokenBatch.IgnoreTarget ? 999 : t).ToArray(); // garbage where ignored

        Assert.Equal(new ExactMatchScore(4, 4), batch.ScoreExactMatch(predictions));

        var firstTrained = Array.FindIndex(batch.Targets, batch.SequenceLength, t => t != TokenBatch.IgnoreTarget);
        predictions[firstTrained] = s_task.PaddingId;
        Assert.Equal(new ExactMatchScore(3, 4), batch.ScoreExactMatch(predictions));
        Assert.Throws<ArgumentException>(() => batch.ScoreExactMatch(predictions[1..]));
    }

    [Fact]
    public void FormatShowsSymbolsAsLetters()
    {
        Assert.Equal("c a f | f a c $ _ <99?>", s_task.Format([2, 0, 5, 16, 5, 0, 2, 17, 18, 99]));
    }

    [Theory]
    [InlineData(1, 4, 12, 10, "AlphabetSize is 1")]
    [InlineData(16, 0, 12, 10, "MinLength must be >= 1")]
    [InlineData(16, 5, 4, 10, "The lengths are 5 to 4")]
    [InlineData(2, 1, 2, 4, "HeldOutCount is 4; it must be 0 to 3")]
    [InlineData(16, 4, 12, -1, "HeldOutCount is -1")]
    public void BadOptionsAreRefusedWithTheirRange(int alphabet, int min, int max, int heldOut, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() =>
            new ReversalTask(new ReversalTaskOptions { AlphabetSize = alphabet, MinLength = min, MaxLength = max, HeldOutCount = heldOut }));

        Assert.Contains(expected, e.Message);
    }
}
