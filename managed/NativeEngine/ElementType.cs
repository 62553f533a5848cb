namespace NativeEngine;

/// <summary>The managed element types of the dtypes, for the host copies of <see cref="Tensor"/>.</summary>
internal static class ElementType
{
    /// <summary>The dtype that <typeparamref name="T"/> stands for, when there is exactly one.</summary>
    internal static Dtype? DtypeOf<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? Dtype.F32
        : typeof(T) == typeof(int) ? Dtype.I32
        : typeof(T) == typeof(sbyte) ? Dtype.I8
        : typeof(T) == typeof(Half) ? Dtype.F16
        : null;

    /// <summary>Whether elements of <paramref name="dtype"/> may be copied as <typeparamref name="T"/>:
    /// same size and same kind. <see cref="ushort"/> carries the raw bits of F16 and BF16.</summary>
    internal static bool Matches<T>(Dtype dtype) where T : unmanaged =>
        DtypeOf<T>() == dtype || (typeof(T) == typeof(ushort) && dtype is Dtype.F16 or Dtype.Bf16);

    /// <summary>The element types a dtype may be copied as, for messages.</summary>
    internal static string ManagedTypesOf(Dtype dtype) => dtype switch
    {
        Dtype.F32 => "float",
        Dtype.I32 => "int",
        Dtype.I8 => "sbyte",
        Dtype.F16 => "Half or ushort (raw bits)",
        Dtype.Bf16 => "ushort (raw bits)",
        _ => "none",
    };

    /// <summary>Throws <see cref="ArgumentException"/> unless <typeparamref name="T"/> matches <paramref name="dtype"/>.</summary>
    internal static void Check<T>(Dtype dtype, string paramName) where T : unmanaged
    {
        if (!Matches<T>(dtype))
        {
            throw new ArgumentException(
                $"Element type {typeof(T).Name} does not match the tensor's dtype {dtype}; expected {ManagedTypesOf(dtype)}.",
                paramName);
        }
    }
}
