using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace NativeEngine.BindingGen;

/// <summary>
/// Reads the public header through clang's JSON AST (a real C parser), keeping the declarations
/// whose names start with the library prefix and their documentation comments (<c>/** ... */</c>).
/// </summary>
public static class ClangAstReader
{
    private const string Prefix = "ne_";
    private const string ConstantPrefix = "NE_";

    /// <summary>Runs <paramref name="clang"/> on the header and returns its declarations.</summary>
    public static HeaderModel Read(string headerPath, string clang)
    {
        using var ast = JsonDocument.Parse(RunClang(headerPath, clang));
        return Build(ast.RootElement);
    }

    private static string RunClang(string headerPath, string clang)
    {
        var startInfo = new ProcessStartInfo(clang)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "-Xclang", "-ast-dump=json", "-fsyntax-only", "-std=c99", "-x", "c", headerPath })
        {
            startInfo.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(startInfo) ?? throw new BindingGenException($"could not start '{clang}'");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new BindingGenException($"could not run '{clang}' ({e.Message}); install clang-14 or pass --clang <path>");
        }

        using (process)
        {
            var errors = process.StandardError.ReadToEndAsync();
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new BindingGenException($"'{clang}' failed on {headerPath} (exit {process.ExitCode}): {errors.Result.Trim()}");
            }
            return output;
        }
    }

    private static HeaderModel Build(JsonElement root)
    {
        var constants = new List<EnumMember>();
        var enums = new List<EnumModel>();
        var structs = new List<StructModel>();
        var opaque = new List<string>();
        var functions = new List<FunctionModel>();

        foreach (var node in Children(root))
        {
            var kind = node.GetProperty("kind").GetString();
            var name = node.TryGetProperty("name", out var nameElement) ? nameElement.GetString() ?? "" : "";
            if (IsImplicit(node))
            {
                continue;
            }

            switch (kind)
            {
                case "EnumDecl" when name.StartsWith(Prefix, StringComparison.Ordinal):
                    enums.Add(new EnumModel(name, Documentation(node), EnumMembers(node)));
                    break;
                case "EnumDecl" when name.Length == 0:
                    // Anonymous enums carry the header's integer constants (NE_ABI_VERSION, ...).
                    var members = EnumMembers(node);
                    if (members.All(m => m.CName.StartsWith(ConstantPrefix, StringComparison.Ordinal)))
                    {
                        constants.AddRange(members);
                    }
                    break;
                case "RecordDecl" when name.StartsWith(Prefix, StringComparison.Ordinal):
                    var fields = Children(node).Where(c => c.GetProperty("kind").GetString() == "FieldDecl").ToList();
                    if (fields.Count == 0)
                    {
                        opaque.Add(name);
                    }
                    else
                    {
                        structs.Add(new StructModel(name, Documentation(node), fields.Select(Field).ToList()));
                    }
                    break;
                case "FunctionDecl" when name.StartsWith(Prefix, StringComparison.Ordinal):
                    functions.Add(Function(node, name));
                    break;
            }
        }

        return new HeaderModel(constants, enums, structs, opaque, functions);
    }

    private static bool IsImplicit(JsonElement node) =>
        node.TryGetProperty("isImplicit", out var flag) && flag.GetBoolean();

    private static IEnumerable<JsonElement> Children(JsonElement node) =>
        node.TryGetProperty("inner", out var inner) ? inner.EnumerateArray() : Enumerable.Empty<JsonElement>();

    private static List<EnumMember> EnumMembers(JsonElement node)
    {
        var members = new List<EnumMember>();
        long next = 0;
        foreach (var child in Children(node).Where(c => c.GetProperty("kind").GetString() == "EnumConstantDecl"))
        {
            var value = next;
            var constant = Children(child).FirstOrDefault(c => c.GetProperty("kind").GetString() == "ConstantExpr");
            if (constant.ValueKind != JsonValueKind.Undefined)
            {
                value = long.Parse(constant.GetProperty("value").GetString()!, CultureInfo.InvariantCulture);
            }
            members.Add(new EnumMember(child.GetProperty("name").GetString()!, value, Documentation(child)));
            next = value + 1;
        }
        return members;
    }

    private static FieldModel Field(JsonElement node) =>
        new(node.GetProperty("name").GetString()!, CType.Parse(QualType(node)), Documentation(node));

    private static FunctionModel Function(JsonElement node, string name)
    {
        var signature = QualType(node);
        var returnType = CType.Parse(signature[..signature.IndexOf('(')]);
        var parameters = Children(node)
            .Where(c => c.GetProperty("kind").GetString() == "ParmVarDecl")
            .Select(p => new ParameterModel(
                p.TryGetProperty("name", out var parameterName) ? parameterName.GetString()! : throw new BindingGenException($"{name}: unnamed parameter"),
                CType.Parse(QualType(p))))
            .ToList();
        return new FunctionModel(name, returnType, parameters, Documentation(node));
    }

    private static string QualType(JsonElement node) => node.GetProperty("type").GetProperty("qualType").GetString()!;

    // The text of a declaration's documentation comment, whitespace collapsed; null if it has none.
    private static string? Documentation(JsonElement node)
    {
        var comment = Children(node).FirstOrDefault(c => c.GetProperty("kind").GetString() == "FullComment");
        if (comment.ValueKind == JsonValueKind.Undefined)
        {
            return null;
        }
        var text = new StringBuilder();
        AppendText(comment, text);
        var collapsed = string.Join(' ', text.ToString().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return collapsed.Length == 0 ? null : collapsed;
    }

    private static void AppendText(JsonElement node, StringBuilder text)
    {
        if (node.TryGetProperty("text", out var fragment))
        {
            text.Append(fragment.GetString()).Append(' ');
        }
        foreach (var child in Children(node))
        {
            AppendText(child, text);
        }
    }
}
