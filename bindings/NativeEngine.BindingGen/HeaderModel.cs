namespace NativeEngine.BindingGen;

/// <summary>A C type as written in the header: a named base type, pointer depth, constness and an optional array length.</summary>
public sealed record CType(string BaseName, int PointerDepth, bool IsConst, int? ArrayLength)
{
    /// <summary>Parses clang's spelling of a type, such as "const int64_t *", "ne_tensor **" or "int64_t[8]".</summary>
    public static CType Parse(string qualType)
    {
        var text = qualType.Trim();
        int? arrayLength = null;
        var bracket = text.IndexOf('[');
        if (bracket >= 0)
        {
            arrayLength = int.Parse(text[(bracket + 1)..text.IndexOf(']')], System.Globalization.CultureInfo.InvariantCulture);
            text = text[..bracket].Trim();
        }
        var pointerDepth = text.Count(c => c == '*');
        text = text.Replace("*", " ", StringComparison.Ordinal);
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        var isConst = words.Remove("const");
        words.Remove("enum");
        words.Remove("struct");
        if (words.Count != 1)
        {
            throw new BindingGenException($"unsupported C type '{qualType}'");
        }
        return new CType(words[0], pointerDepth, isConst, arrayLength);
    }
}

/// <summary>A documented enum constant.</summary>
public sealed record EnumMember(string CName, long Value, string? Doc);

/// <summary>A named C enum (ne_status, ne_dtype, ...).</summary>
public sealed record EnumModel(string CName, string? Doc, IReadOnlyList<EnumMember> Members);

/// <summary>A struct field.</summary>
public sealed record FieldModel(string CName, CType Type, string? Doc);

/// <summary>A plain C struct passed by pointer (parameters and info structs).</summary>
public sealed record StructModel(string CName, string? Doc, IReadOnlyList<FieldModel> Fields);

/// <summary>A function parameter.</summary>
public sealed record ParameterModel(string CName, CType Type);

/// <summary>An exported function.</summary>
public sealed record FunctionModel(string CName, CType ReturnType, IReadOnlyList<ParameterModel> Parameters, string? Doc);

/// <summary>Everything the header declares, in declaration order.</summary>
public sealed record HeaderModel(
    IReadOnlyList<EnumMember> Constants,
    IReadOnlyList<EnumModel> Enums,
    IReadOnlyList<StructModel> Structs,
    IReadOnlyList<string> OpaqueTypes,
    IReadOnlyList<FunctionModel> Functions);

/// <summary>The header uses something the generator does not know how to bind.</summary>
public sealed class BindingGenException(string message) : Exception(message);
