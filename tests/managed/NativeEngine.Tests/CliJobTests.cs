using System.Security.Cryptography;
using NativeEngine.Cli;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

/// <summary>The CLI's jobs end to end on a tiny run: train saves a checkpoint that generate, eval and quantize
/// load; bad files and options give one error line and a non-zero exit without touching existing files.</summary>
[Collection(GlobalStateCollection.Name)]
public sealed class CliJobTests
{
    private static readonly string[] TinyModel = ["--steps", "12", "--dim", "16", "--heads", "2", "--layers", "1", "--threads", "1"];

    private static (int ExitCode, string[] ErrorLines) Run(params string[] args) => CliTests.Run(args);

    private static string TrainTiny(TempDirectory temp, string name = "run")
    {
        var run = temp.File(name);
        var (exitCode, errors) = Run(["train", .. TinyModel, "--out", run]);
        Assert.Empty(errors);
        Assert.Equal(ExitCodes.Success, exitCode);
        return Path.Combine(run, "checkpoint");
    }

    private static Dictionary<string, string> Hashes(string directory) =>
        Directory.GetFiles(directory, "*", SearchOption.AllDirectories)
            .ToDictionary(f => f, f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Fact]
    public void TrainSavesACheckpointAndLossCurveThatGenerateEvalAndQuantizeLoad()
    {
        using var temp = new TempDirectory();
        var checkpoint = TrainTiny(temp);

        Assert.True(File.Exists(temp.File("run", "loss_curve.csv")));
        Assert.True(File.Exists(temp.File("run", "loss_curve.png")));
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()), Run("generate", "--checkpoint", checkpoint, "--prompt", "abc", "--threads", "1"));
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()), Run("eval", "--checkpoint", checkpoint, "--threads", "1"));
        var map = temp.File("attention.png");
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()),
            Run("generate", "--checkpoint", checkpoint, "--prompt", "abc", "--attention-map", map, "--threads", "1"));
        Assert.True(new FileInfo(map).Length > 0);
        var int8 = temp.File("int8");
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()), Run("quantize", "--checkpoint", checkpoint, "--out", int8, "--threads", "1"));
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()), Run("eval", "--checkpoint", int8, "--threads", "1"));
    }

    [Fact]
    public void TrainOnATextFileThenGenerateAndEvalWithItsTokenizer()
    {
        using var temp = new TempDirectory();
        var text = temp.File("corpus.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Range(0, 400).Select(i => $"line {i}: the quick brown fox jumps over the lazy dog.\n")));
        var run = temp.File("text");

        var trained = Run(["train", "--data", text, "--seq-len", "32", "--batch-size", "4", .. TinyModel, "--out", run]);
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()), trained);
        var checkpoint = Path.Combine(run, "checkpoint");
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()),
            Run("generate", "--checkpoint", checkpoint, "--prompt", "the quick", "--max-tokens", "8", "--temperature", "0.8", "--top-k", "5", "--threads", "1"));
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()), Run("eval", "--checkpoint", checkpoint, "--batches", "2", "--threads", "1"));
        var sampled = Run(["train", "--data", text, "--seq-len", "32", "--batch-size", "4", "--loss", "sampled", "--samples", "64", .. TinyModel, "--out", temp.File("sampled")]);
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()), sampled);
    }

    [Fact]
    public void ResumingContinuesTheRunAndAnExistingCheckpointIsNeverOverwrittenSilently()
    {
        using var temp = new TempDirectory();
        var checkpoint = TrainTiny(temp);
        var before = Hashes(temp.File("run"));

        var (exitCode, errors) = Run(["train", .. TinyModel, "--out", temp.File("run")]);

        Assert.Equal(ExitCodes.UsageError, exitCode);
        Assert.Contains("already holds a checkpoint", Assert.Single(errors), StringComparison.Ordinal);
        Assert.Equal(before, Hashes(temp.File("run")));

        var resumed = Run(["train", "--steps", "16", "--dim", "16", "--heads", "2", "--layers", "1", "--threads", "1", "--out", temp.File("run"), "--resume"]);
        Assert.Equal((ExitCodes.Success, Array.Empty<string>()), resumed);
        Assert.True(Directory.Exists(checkpoint));
    }

    [Fact]
    public void ACorruptCheckpointIsOneErrorLineAndItsFilesStayUntouched()
    {
        using var temp = new TempDirectory();
        var checkpoint = TrainTiny(temp);
        var model = Path.Combine(checkpoint, "model.safetensors");
        var bytes = File.ReadAllBytes(model);
        bytes[^3] ^= 0x5A;
        File.WriteAllBytes(model, bytes);
        var before = Hashes(temp.File("run"));

        foreach (var args in new[] { new[] { "eval", "--checkpoint", checkpoint }, ["generate", "--checkpoint", checkpoint], ["quantize", "--checkpoint", checkpoint] })
        {
            var (exitCode, errors) = Run(args);

            Assert.Equal(ExitCodes.InputError, exitCode);
            var line = Assert.Single(errors);
            Assert.StartsWith("error: ", line, StringComparison.Ordinal);
            Assert.Contains("model.safetensors", line, StringComparison.Ordinal);
        }
        Assert.Equal(before, Hashes(temp.File("run")));
    }

    [Theory]
    [InlineData(new[] { "train", "--data", "/nonexistent/file.txt" }, ExitCodes.InputError, "/nonexistent/file.txt")]
    [InlineData(new[] { "train", "--lr", "-1" }, ExitCodes.UsageError, "--lr must be a positive number")]
    [InlineData(new[] { "train", "--dropout", "1" }, ExitCodes.UsageError, "--dropout must be in [0, 1)")]
    [InlineData(new[] { "train", "--heads", "3" }, ExitCodes.UsageError, "invalid model options")]
    [InlineData(new[] { "train", "--loss", "approximate" }, ExitCodes.UsageError, "approximate")]
    [InlineData(new[] { "train", "--tokenizer", "cl100k" }, ExitCodes.UsageError, "--tokenizer applies to --data")]
    [InlineData(new[] { "train", "--resume" }, ExitCodes.UsageError, "--resume needs --out")]
    [InlineData(new[] { "generate", "--checkpoint", "/nonexistent/checkpoint" }, ExitCodes.InputError, "no checkpoint in '/nonexistent/checkpoint'")]
    [InlineData(new[] { "generate" }, ExitCodes.UsageError, "--checkpoint")]
    public void BadJobInputIsOneErrorLine(string[] args, int expectedExitCode, string expected)
    {
        var (exitCode, errors) = Run(args);

        Assert.Equal(expectedExitCode, exitCode);
        var line = Assert.Single(errors);
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
    }

    [Fact]
    public void ABadPromptForAReversalModelNamesTheAlphabet()
    {
        using var temp = new TempDirectory();
        var checkpoint = TrainTiny(temp);

        var (exitCode, errors) = Run("generate", "--checkpoint", checkpoint, "--prompt", "xyz!");

        Assert.Equal(ExitCodes.UsageError, exitCode);
        Assert.Contains("symbols from 'a' to 'p'", Assert.Single(errors), StringComparison.Ordinal);
    }
}
