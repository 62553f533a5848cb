using NativeEngine.Inference;

namespace NativeEngine.Tests.Inference;

internal static class GeneratorTestExtensions
{
    /// <summary><see cref="Generator.Generate"/> canceled with the test.</summary>
    public static GenerationResult Run(this Generator generator, int[] prompt, GenerationOptions? options = null, Action<int>? onToken = null) =>
        generator.Generate(prompt, options, onToken, TestContext.Current.CancellationToken);
}
