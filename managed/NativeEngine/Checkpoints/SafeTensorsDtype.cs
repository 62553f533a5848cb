namespace NativeEngine.Checkpoints;

/// <summary>The element types of the safetensors format that NativeEngine reads and writes: every
/// byte-sized one of the specification. <see cref="SafeTensorsDtypes.ToSpecString"/> gives the string
/// stored in a header (<c>"F32"</c>, <c>"BF16"</c>, ...).</summary>
public enum SafeTensorsDtype
{
    /// <summary><c>"BOOL"</c>: one byte, 0 or 1.</summary>
    Bool,

    /// <summary><c>"U8"</c>: unsigned 8-bit integer.</summary>
    U8,

    /// <summary><c>"I8"</c>: signed 8-bit integer (NativeEngine's <see cref="Dtype.I8"/>).</summary>
    I8,

    /// <summary><c>"F8_E5M2"</c>: 8-bit float, 5 exponent bits.</summary>
    F8E5M2,

    /// <summary><c>"F8_E4M3"</c>: 8-bit float, 4 exponent bits.</summary>
    F8E4M3,

    /// <summary><c>"I16"</c>: signed 16-bit integer.</summary>
    I16,

    /// <summary><c>"U16"</c>: unsigned 16-bit integer.</summary>
    U16,

    /// <summary><c>"F16"</c>: IEEE binary16 (NativeEngine's <see cref="Dtype.F16"/>).</summary>
    F16,

    /// <summary><c>"BF16"</c>: bfloat16 (NativeEngine's <see cref="Dtype.Bf16"/>).</summary>
    BF16,

    /// <summary><c>"I32"</c>: signed 32-bit integer (NativeEngine's <see cref="Dtype.I32"/>).</summary>
    I32,

    /// <summary><c>"U32"</c>: unsigned 32-bit integer.</summary>
    U32,

    /// <summary><c>"F32"</c>: IEEE binary32 (NativeEngine's <see cref="Dtype.F32"/>).</summary>
    F32,

    /// <summary><c>"F64"</c>: IEEE binary64.</summary>
    F64,

    /// <summary><c>"I64"</c>: signed 64-bit integer.</summary>
    I64,

    /// <summary><c>"U64"</c>: unsigned 64-bit integer.</summary>
    U64,
}

/// <summary>Properties of <see cref="SafeTensorsDtype"/>: header strings, sizes, NativeEngine dtypes and
/// the managed element types that carry them.</summary>
public static class SafeTensorsDtypes
{
    /// <summary>The string that stands for <paramref name="dtype"/> in a safetensors header.</summary>
    /// <param name="dtype">The element type.</param>
    /// <returns>Such as <c>"F32"</c>, <c>"BF16"</c>, <c>"F8_E4M3"</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dtype"/> is not a defined value.</exception>
    public static string ToSpecString(this SafeTensorsDtype dtype) => dtype switch
    {
        SafeTensorsDtype.Bool => "BOOL",
        SafeTensorsDtype.U8 => "U8",
        SafeTensorsDtype.I8 => "I8",
        SafeTensorsDtype.F8E5M2 => "F8_E5M2",
        SafeTensorsDtype.F8E4M3 => "F8_E4M3",
        SafeTensorsDtype.I16 => "I16",
        SafeTensorsDtype.U16 => "U16",
        SafeTensorsDtype.F16 => "F16",
        SafeTensorsDtype.BF16 => "BF16",
        SafeTensorsDtype.I32 => "I32",
        SafeTensorsDtype.U32 => "U32",
        SafeTensorsDtype.F32 => "F32",
        SafeTensorsDtype.F64 => "F64",
        SafeTensorsDtype.I64 => "I64",
        SafeTensorsDtype.U64 => "U64",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), $"{(int)dtype} is not a SafeTensorsDtype."),
    };

    /// <summary>Parses a header's dtype string (exact, uppercase, as the specification spells it).</summary>
    /// <param name="text">Such as <c>"F32"</c>.</param>
    /// <param name="dtype">The element type, when the string is known.</param>
    /// <returns>Whether the string is a known dtype.</returns>
    public static bool TryParse(string? text, out SafeTensorsDtype dtype)
    {
        foreach (var candidate in Enum.GetValues<SafeTensorsDtype>())
        {
            if (string.Equals(candidate.ToSpecString(), text, StringComparison.Ordinal))
            {
                dtype = candidate;
                return true;
            }
        }
        dtype = default;
        return false;
    }

    /// <summary>The size of one element in bytes: 1, 2, 4 or 8.</summary>
    /// <param name="dtype">The element type.</param>
    /// <returns>The size.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dtype"/> is not a defined value.</exception>
    public static int ElementSize(this SafeTensorsDtype dtype) => dtype switch
    {
        SafeTensorsDtype.Bool or SafeTensorsDtype.U8 or SafeTensorsDtype.I8 or SafeTensorsDtype.F8E5M2 or SafeTensorsDtype.F8E4M3 => 1,
        SafeTensorsDtype.I16 or SafeTensorsDtype.U16 or SafeTensorsDtype.F16 or SafeTensorsDtype.BF16 => 2,
        SafeTensorsDtype.I32 or SafeTensorsDtype.U32 or SafeTensorsDtype.F32 => 4,
        SafeTensorsDtype.F64 or SafeTensorsDtype.I64 or SafeTensorsDtype.U64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), $"{(int)dtype} is not a SafeTensorsDtype."),
    };

    /// <summary>The safetensors dtype of a NativeEngine dtype (every NativeEngine dtype has one).</summary>
    /// <param name="dtype">The NativeEngine dtype.</param>
    /// <returns>The safetensors dtype.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dtype"/> is not a defined value.</exception>
    public static SafeTensorsDtype FromDtype(Dtype dtype) => dtype switch
    {
        Dtype.F32 => SafeTensorsDtype.F32,
        Dtype.F16 => SafeTensorsDtype.F16,
        Dtype.Bf16 => SafeTensorsDtype.BF16,
        Dtype.I8 => SafeTensorsDtype.I8,
        Dtype.I32 => SafeTensorsDtype.I32,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), $"{dtype} has no safetensors dtype."),
    };

    /// <summary>The NativeEngine dtype of a safetensors dtype, if it has one.</summary>
    /// <param name="dtype">The safetensors dtype.</param>
    /// <returns>F32, F16, BF16, I8 and I32 have one; the others <see langword="null"/>.</returns>
    public static Dtype? ToDtype(this SafeTensorsDtype dtype) => dtype switch
    {
        SafeTensorsDtype.F32 => Dtype.F32,
        SafeTensorsDtype.F16 => Dtype.F16,
        SafeTensorsDtype.BF16 => Dtype.Bf16,
        SafeTensorsDtype.I8 => Dtype.I8,
        SafeTensorsDtype.I32 => Dtype.I32,
        _ => null,
    };

    /// <summary>The safetensors dtype that the managed element type <typeparamref name="T"/> stands for,
    /// when there is exactly one: float F32, double F64, Half F16, sbyte I8, byte U8, bool BOOL,
    /// short I16, ushort U16, int I32, uint U32, long I64, ulong U64.</summary>
    /// <typeparam name="T">The element type.</typeparam>
    /// <returns>The dtype, or <see langword="null"/> for other types.</returns>
    public static SafeTensorsDtype? FromElementType<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? SafeTensorsDtype.F32
        : typeof(T) == typeof(double) ? SafeTensorsDtype.F64
        : typeof(T) == typeof(Half) ? SafeTensorsDtype.F16
        : typeof(T) == typeof(sbyte) ? SafeTensorsDtype.I8
        : typeof(T) == typeof(byte) ? SafeTensorsDtype.U8
        : typeof(T) == typeof(bool) ? SafeTensorsDtype.Bool
        : typeof(T) == typeof(short) ? SafeTensorsDtype.I16
        : typeof(T) == typeof(ushort) ? SafeTensorsDtype.U16
        : typeof(T) == typeof(int) ? SafeTensorsDtype.I32
        : typeof(T) == typeof(uint) ? SafeTensorsDtype.U32
        : typeof(T) == typeof(long) ? SafeTensorsDtype.I64
        : typeof(T) == typeof(ulong) ? SafeTensorsDtype.U64
        : null;

    /// <summary>Whether elements of <paramref name="dtype"/> may be read as <typeparamref name="T"/>: the
    /// type of <see cref="FromElementType{T}"/>, and also <see cref="ushort"/> for the bits of F16 and
    /// BF16 and <see cref="byte"/> for BOOL and the 8-bit floats.</summary>
    /// <typeparam name="T">The element type.</typeparam>
    /// <param name="dtype">The safetensors dtype.</param>
    /// <returns>Whether they match.</returns>
    public static bool Matches<T>(SafeTensorsDtype dtype) where T : unmanaged =>
        FromElementType<T>() == dtype
        || (typeof(T) == typeof(ushort) && dtype is SafeTensorsDtype.F16 or SafeTensorsDtype.BF16)
        || (typeof(T) == typeof(byte) && dtype is SafeTensorsDtype.Bool or SafeTensorsDtype.F8E4M3 or SafeTensorsDtype.F8E5M2);
}
