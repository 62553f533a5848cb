using NativeEngine.BindingGen;
using NativeEngine.Tests.Support;

namespace NativeEngine.Tests;

public sealed class BindingDriftTests
{
    [Fact]
    public void TheCommittedBindingsAreWhatTheHeaderGenerates()
    {
        var root = RepositoryRoot.Path;
        var committed = File.ReadAllText(Path.Combine(root, BindingGenerator.OutputPath));

        var generated = BindingGenerator.Generate(root);

        if (generated != committed)
        {
            var generatedLines = generated.Split('\n');
            var committedLines = committed.Split('\n');
            var line = 0;
            while (line < Math.Min(generatedLines.Length, committedLines.Length) && generatedLines[line] == committedLines[line])
            {
                line++;
            }
            Assert.Fail(
                $"{BindingGenerator.OutputPath} is out of date with {BindingGenerator.HeaderPath} (first difference at line {line + 1}):\n" +
                $"  committed: {(line < committedLines.Length ? committedLines[line] : "<end of file>")}\n" +
                $"  generated: {(line < generatedLines.Length ? generatedLines[line] : "<end of file>")}\n" +
                "Regenerate it with ./build.sh bindings.");
        }
    }
}
