using NativeEngine.BindingGen;

// Usage: NativeEngine.BindingGen [--root <repository>] [--clang <clang>] [--check]
// Writes bindings/generated/NativeMethods.g.cs from native/include/nativeengine.h; with --check,
// writes nothing and exits 1 if the committed file differs from what the header gives.
var root = Directory.GetCurrentDirectory();
var clang = BindingGenerator.DefaultClang;
var check = false;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--root" when i + 1 < args.Length:
            root = args[++i];
            break;
        case "--clang" when i + 1 < args.Length:
            clang = args[++i];
            break;
        case "--check":
            check = true;
            break;
        default:
            Console.Error.WriteLine($"error: unknown argument '{args[i]}'. Usage: NativeEngine.BindingGen [--root <repository>] [--clang <clang>] [--check]");
            return 2;
    }
}

try
{
    var generated = BindingGenerator.Generate(root, clang);
    var outputPath = Path.Combine(root, BindingGenerator.OutputPath);
    var committed = File.Exists(outputPath) ? File.ReadAllText(outputPath) : "";
    if (check)
    {
        if (committed == generated)
        {
            Console.WriteLine($"{BindingGenerator.OutputPath} is up to date.");
            return 0;
        }
        Console.Error.WriteLine($"error: {BindingGenerator.OutputPath} is out of date with {BindingGenerator.HeaderPath}; run ./build.sh bindings");
        return 1;
    }
    if (committed != generated)
    {
        var temporary = outputPath + ".tmp";
        File.WriteAllText(temporary, generated);
        File.Move(temporary, outputPath, overwrite: true);
    }
    Console.WriteLine($"Wrote {BindingGenerator.OutputPath}.");
    return 0;
}
catch (BindingGenException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
