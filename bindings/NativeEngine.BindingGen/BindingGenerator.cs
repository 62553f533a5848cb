namespace NativeEngine.BindingGen;

/// <summary>Header in, C# out: the one entry point the command line and the drift test share.</summary>
public static class BindingGenerator
{
    /// <summary>The header, relative to the repository root.</summary>
    public const string HeaderPath = "native/include/nativeengine.h";

    /// <summary>The committed output, relative to the repository root.</summary>
    public const string OutputPath = "bindings/generated/NativeMethods.g.cs";

    /// <summary>The clang the generator runs unless told otherwise.</summary>
    public const string DefaultClang = "clang-14";

    /// <summary>Generates the bindings source for the header at <paramref name="repositoryRoot"/>/<see cref="HeaderPath"/>.</summary>
    public static string Generate(string repositoryRoot, string clang = DefaultClang)
    {
        var model = ClangAstReader.Read(Path.Combine(repositoryRoot, HeaderPath), clang);
        return CSharpEmitter.Emit(model, HeaderPath);
    }
}
