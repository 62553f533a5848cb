using System.Collections.ObjectModel;
using NativeEngine.Interop;

namespace NativeEngine;

/// <summary>
/// A typed, shaped view of memory owned by a <see cref="NativeEngine.Context"/>. Wraps one native
/// <c>ne_tensor</c> handle.
/// </summary>
/// <remarks>
/// <para>Ownership: every factory (<see cref="Create"/>, <see cref="FromArray{T}"/>, <see cref="View"/>,
/// <see cref="Clone"/> and the allocating kernels of <see cref="Ops"/>) returns a new tensor that the
/// caller owns and must dispose, either directly or through the <see cref="TensorScope"/> that was
/// current when it was created. A tensor keeps its memory alive: a view stays valid after its base
/// is disposed, and tensors may be disposed before or after their context. A tensor that is never
/// disposed is released by its safe handle's finalizer at a time the garbage collector picks:
/// always dispose it.</para>
/// <para>The managed side never reads native memory directly: data moves only through the explicit
/// copies <see cref="CopyFrom{T}"/>, <see cref="CopyTo{T}"/> and <see cref="ToArray{T}"/>, which check the
/// element type <c>T</c> against <see cref="Dtype"/> first.</para>
/// <para>Threading: the tensors of a context must be used from one thread at a time, like the context.</para>
/// </remarks>
public sealed class Tensor : IDisposable
{
    private readonly TensorHandle _handle;
    private readonly Context _context;
    private readonly Dtype _dtype;
    private readonly long[] _shape;
    private readonly long[] _strides;
    private readonly ReadOnlyCollection<long> _shapeView;
    private readonly ReadOnlyCollection<long> _stridesView;
    private readonly long _offset;
    private readonly long _elementCount;
    private readonly bool _isContiguous;
    private int _disposed;

    private unsafe Tensor(Context context, TensorHandle handle, in NeTensorInfo info)
    {
        _context = context;
        _handle = handle;
        _dtype = info.Dtype;
        _shape = new long[info.Rank];
        _strides = new long[info.Rank];
        for (var i = 0; i < info.Rank; i++)
        {
            _shape[i] = info.Shape[i];
            _strides[i] = info.Strides[i];
        }
        _shapeView = Array.AsReadOnly(_shape);
        _stridesView = Array.AsReadOnly(_strides);
        _offset = info.Offset;
        _elementCount = info.ElementCount;
        _isContiguous = info.IsContiguous != 0;
    }

    /// <summary>The scope that disposes this tensor, if any. Guarded by <see cref="TensorScope.MembershipLock"/>.</summary>
    internal TensorScope? OwnerScope { get; set; }

    /// <summary>The context whose memory the tensor views.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public Context Context => Alive(_context);

    /// <summary>The element type.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public Dtype Dtype => Alive(_dtype);

    /// <summary>The number of dimensions, 0 (a scalar) to <see cref="NativeConstants.MaxRank"/>.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public int Rank => Alive(_shape.Length);

    /// <summary>The dimensions, outermost first.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public IReadOnlyList<long> Shape => Alive(_shapeView);

    /// <summary>The strides, in elements, of each dimension.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public IReadOnlyList<long> Strides => Alive(_stridesView);

    /// <summary>The offset of element 0 in the underlying allocation, in elements.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public long Offset => Alive(_offset);

    /// <summary>The number of elements: the product of the dimensions (1 for a scalar).</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public long ElementCount => Alive(_elementCount);

    /// <summary>Whether the elements are laid out row-major without gaps.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public bool IsContiguous => Alive(_isContiguous);

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The scope that will dispose this tensor, or <see langword="null"/> when the caller
    /// disposes it.</summary>
    public TensorScope? Scope
    {
        get
        {
            lock (TensorScope.MembershipLock)
            {
                return OwnerScope;
            }
        }
    }

    /// <summary>The native handle, for the calls of this assembly.</summary>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    internal TensorHandle Handle => Alive(_handle);

    /// <summary>The native handle of an argument, naming the argument if the tensor was disposed.</summary>
    internal TensorHandle HandleFor(string argument)
    {
        if (IsDisposed)
        {
            throw new ObjectDisposedException(nameof(Tensor), $"The tensor passed as '{argument}' has been disposed.");
        }
        return _handle;
    }

    /// <summary>Creates a zero-filled, contiguous (row-major) tensor in the context's memory.</summary>
    /// <param name="context">The context that owns the memory.</param>
    /// <param name="dtype">The element type.</param>
    /// <param name="shape">The dimensions, each positive; none for a scalar.</param>
    /// <returns>A new tensor. Ownership: the caller owns it and must dispose it (or the current
    /// <see cref="TensorScope"/> does).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="context"/> is null.</exception>
    /// <exception cref="ObjectDisposedException"><paramref name="context"/> was disposed.</exception>
    /// <exception cref="NativeEngineException">The library refused the shape or dtype, or is out of memory.</exception>
    public static Tensor Create(Context context, Dtype dtype, params ReadOnlySpan<long> shape)
    {
        ArgumentNullException.ThrowIfNull(context);
        return CreateCore(context, dtype, shape, register: true);
    }

    /// <summary>Creates a contiguous tensor holding a copy of <paramref name="data"/>. The dtype
    /// follows from <typeparamref name="T"/>: <see cref="float"/> gives <see cref="Dtype.F32"/>,
    /// <see cref="int"/> <see cref="Dtype.I32"/>, <see cref="sbyte"/> <see cref="Dtype.I8"/>,
    /// <see cref="Half"/> <see cref="Dtype.F16"/>.</summary>
    /// <typeparam name="T">The element type.</typeparam>
    /// <param name="context">The context that owns the memory.</param>
    /// <param name="data">The elements, row-major; as many as the shape holds.</param>
    /// <param name="shape">The dimensions; none for a 1-D tensor of <c>data.Length</c> elements.</param>
    /// <returns>A new tensor. Ownership: the caller owns it and must dispose it (or the current
    /// <see cref="TensorScope"/> does).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="context"/> is null.</exception>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> stands for no dtype (for BF16, use
    /// <see cref="Create"/> and <see cref="CopyFrom{T}"/> with <see cref="ushort"/> bits).</exception>
    /// <exception cref="ObjectDisposedException"><paramref name="context"/> was disposed.</exception>
    /// <exception cref="NativeEngineException">The library refused the shape, or the element count of
    /// <paramref name="data"/> differs from the shape's (<see cref="Status.ShapeMismatch"/>).</exception>
    public static Tensor FromArray<T>(Context context, ReadOnlySpan<T> data, params ReadOnlySpan<long> shape)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(context);
        var dtype = ElementType.DtypeOf<T>() ?? throw new ArgumentException(
            $"Element type {typeof(T).Name} stands for no dtype; use float, int, sbyte or Half " +
            "(for BF16, create the tensor with Tensor.Create and copy ushort bits with CopyFrom).", nameof(data));
        var tensor = shape.IsEmpty
            ? CreateCore(context, dtype, [data.Length], register: false)
            : CreateCore(context, dtype, shape, register: false);
        try
        {
            tensor.WriteContiguous(data);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
        tensor.RegisterWithCurrentScope();
        return tensor;
    }

    /// <summary>Creates a view of this tensor's memory: element (i0, i1, ...) of the view is element
    /// <c>offset + i0*strides[0] + i1*strides[1] + ...</c> of the underlying allocation, counted in
    /// elements of this tensor's dtype (from the start of the allocation, not from this tensor's
    /// <see cref="Offset"/>).</summary>
    /// <param name="offset">The element of the allocation that is the view's element 0.</param>
    /// <param name="shape">The view's dimensions, each positive; none for a scalar.</param>
    /// <param name="strides">The view's strides in elements, one per dimension, non-negative;
    /// empty (the default) for contiguous row-major strides.</param>
    /// <returns>A new tensor sharing this tensor's memory. Ownership: the caller owns it and must
    /// dispose it (or the current <see cref="TensorScope"/> does); it keeps the memory alive after
    /// this tensor is disposed.</returns>
    /// <exception cref="ArgumentException"><paramref name="strides"/> is not empty and its length differs
    /// from the rank of <paramref name="shape"/>.</exception>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    /// <exception cref="NativeEngineException">The view reaches outside the allocation
    /// (<see cref="Status.ShapeMismatch"/>) or its arguments are invalid.</exception>
    public unsafe Tensor View(long offset, ReadOnlySpan<long> shape, ReadOnlySpan<long> strides = default)
    {
        if (!strides.IsEmpty && strides.Length != shape.Length)
        {
            throw new ArgumentException(
                $"strides has {strides.Length} entries but shape has {shape.Length}; pass one stride per dimension, or none for contiguous strides.",
                nameof(strides));
        }
        var handle = Handle;
        Status status;
        TensorHandle view;
        fixed (long* shapePointer = shape)
        fixed (long* stridesPointer = strides)
        {
            status = NativeMethods.ne_tensor_view(handle, offset, shape.Length, shapePointer,
                strides.IsEmpty ? null : stridesPointer, out view);
        }
        return Wrap(_context, status, view, register: true);
    }

    /// <summary>Creates a contiguous copy of this tensor (of a view: only the elements it shows).</summary>
    /// <returns>A new tensor in the same context. Ownership: the caller owns it and must dispose it
    /// (or the current <see cref="TensorScope"/> does).</returns>
    /// <exception cref="ObjectDisposedException">The tensor or its context was disposed.</exception>
    /// <exception cref="NativeEngineException">The native library failed (such as out of memory).</exception>
    public Tensor Clone()
    {
        var copy = CreateCore(Context, _dtype, _shape, register: false);
        try
        {
            copy.CopyFrom(this);
        }
        catch
        {
            copy.Dispose();
            throw;
        }
        copy.RegisterWithCurrentScope();
        return copy;
    }

    /// <summary>Sets every element to <paramref name="value"/>, converted to the dtype (integers are
    /// rounded to nearest and must be representable).</summary>
    /// <param name="value">The value.</param>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    /// <exception cref="NativeEngineException">The value is not representable in the dtype.</exception>
    public void Fill(double value) => NativeStatus.Check(NativeMethods.ne_tensor_fill(Handle, value));

    /// <summary>Copies the elements of <paramref name="source"/> into this tensor. Shapes and dtypes
    /// must be equal; strides and contexts may differ; the two must not overlap.</summary>
    /// <param name="source">The tensor to copy from.</param>
    /// <exception cref="ArgumentNullException"><paramref name="source"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">Either tensor was disposed.</exception>
    /// <exception cref="NativeEngineException">Shapes or dtypes differ, or the tensors overlap.</exception>
    public void CopyFrom(Tensor source)
    {
        ArgumentNullException.ThrowIfNull(source);
        NativeStatus.Check(NativeMethods.ne_tensor_copy(Handle, source.HandleFor(nameof(source))));
    }

    /// <summary>Copies host elements into this tensor, row-major. A non-contiguous view is written
    /// through a temporary contiguous tensor of its context.</summary>
    /// <typeparam name="T">The element type; must match <see cref="Dtype"/> (see <see cref="FromArray{T}"/>;
    /// <see cref="ushort"/> also carries the raw bits of F16 and BF16).</typeparam>
    /// <param name="source">The elements: exactly <see cref="ElementCount"/> of them.</param>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> does not match the dtype.</exception>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    /// <exception cref="NativeEngineException">The element count differs (<see cref="Status.ShapeMismatch"/>).</exception>
    public void CopyFrom<T>(ReadOnlySpan<T> source) where T : unmanaged
    {
        ElementType.Check<T>(Dtype, nameof(T));
        if (_isContiguous)
        {
            WriteContiguous(source);
            return;
        }
        using var staging = CreateCore(Context, _dtype, _shape, register: false);
        staging.WriteContiguous(source);
        CopyFrom(staging);
    }

    /// <summary>Copies this tensor's elements to host memory, row-major. A non-contiguous view is read
    /// through a temporary contiguous tensor of its context.</summary>
    /// <typeparam name="T">The element type; must match <see cref="Dtype"/>.</typeparam>
    /// <param name="destination">Room for exactly <see cref="ElementCount"/> elements.</param>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> does not match the dtype.</exception>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    /// <exception cref="NativeEngineException">The element count differs (<see cref="Status.ShapeMismatch"/>).</exception>
    public void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        ElementType.Check<T>(Dtype, nameof(T));
        if (_isContiguous)
        {
            ReadContiguous(destination);
            return;
        }
        using var staging = CreateCore(Context, _dtype, _shape, register: false);
        staging.CopyFrom(this);
        staging.ReadContiguous(destination);
    }

    /// <summary>Copies this tensor's elements into a new array, row-major.</summary>
    /// <typeparam name="T">The element type; must match <see cref="Dtype"/>.</typeparam>
    /// <returns>A new array of <see cref="ElementCount"/> elements.</returns>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> does not match the dtype.</exception>
    /// <exception cref="InvalidOperationException">The tensor has more elements than an array can hold.</exception>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public T[] ToArray<T>() where T : unmanaged
    {
        ElementType.Check<T>(Dtype, nameof(T));
        if (_elementCount > Array.MaxLength)
        {
            throw new InvalidOperationException($"The tensor has {_elementCount} elements, more than an array can hold.");
        }
        var result = GC.AllocateUninitializedArray<T>((int)_elementCount);
        CopyTo<T>(result);
        return result;
    }

    /// <summary>Moves the ownership of this tensor to <paramref name="scope"/> (typically an outer scope,
    /// so that the tensor outlives the current one), or with <see langword="null"/> to the caller.</summary>
    /// <param name="scope">The scope that will dispose the tensor, or <see langword="null"/> to detach it
    /// from any scope: the caller then owns it and must dispose it.</param>
    /// <returns>This tensor.</returns>
    /// <exception cref="ObjectDisposedException">The tensor or <paramref name="scope"/> was disposed.</exception>
    public Tensor MoveTo(TensorScope? scope)
    {
        lock (TensorScope.MembershipLock)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            if (scope is not null)
            {
                ObjectDisposedException.ThrowIf(scope.IsDisposedLocked, scope);
            }
            OwnerScope?.RemoveLocked(this);
            OwnerScope = null;
            scope?.AddLocked(this);
        }
        return this;
    }

    /// <summary>Releases the native tensor handle (and the memory, when no other view holds it), and
    /// leaves the scope that owned it. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        lock (TensorScope.MembershipLock)
        {
            OwnerScope?.RemoveLocked(this);
            OwnerScope = null;
        }
        _handle.Dispose();
    }

    /// <summary>Describes the tensor, such as <c>Tensor(F32, [2, 4])</c>.</summary>
    /// <returns>The description.</returns>
    public override string ToString() =>
        IsDisposed ? "Tensor(disposed)" : $"Tensor({_dtype}, [{string.Join(", ", _shape)}]{(_isContiguous ? "" : ", strided")})";

    internal static unsafe Tensor CreateCore(Context context, Dtype dtype, ReadOnlySpan<long> shape, bool register)
    {
        var contextHandle = context.Handle;
        Status status;
        TensorHandle handle;
        fixed (long* shapePointer = shape)
        {
            status = NativeMethods.ne_tensor_create(contextHandle, dtype, shape.Length, shapePointer, out handle);
        }
        return Wrap(context, status, handle, register);
    }

    private static unsafe Tensor Wrap(Context context, Status status, TensorHandle handle, bool register)
    {
        Tensor tensor;
        try
        {
            NativeStatus.Check(status);
            var info = new NeTensorInfo { StructSize = (uint)sizeof(NeTensorInfo) };
            NativeStatus.Check(NativeMethods.ne_tensor_get_info(handle, &info));
            tensor = new Tensor(context, handle, info);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        if (register)
        {
            tensor.RegisterWithCurrentScope();
        }
        return tensor;
    }

    private void RegisterWithCurrentScope()
    {
        lock (TensorScope.MembershipLock)
        {
            TensorScope.CurrentLocked?.AddLocked(this);
        }
    }

    private unsafe void WriteContiguous<T>(ReadOnlySpan<T> source) where T : unmanaged
    {
        // An empty span pins as NULL; pass a real address so the library reports the size instead.
        byte empty = 0;
        fixed (T* pointer = source)
        {
            var address = source.IsEmpty ? &empty : (void*)pointer;
            NativeStatus.Check(NativeMethods.ne_tensor_write(Handle, address, (ulong)source.Length * (ulong)sizeof(T)));
        }
    }

    private unsafe void ReadContiguous<T>(Span<T> destination) where T : unmanaged
    {
        byte empty = 0;
        fixed (T* pointer = destination)
        {
            var address = destination.IsEmpty ? &empty : (void*)pointer;
            NativeStatus.Check(NativeMethods.ne_tensor_read(Handle, address, (ulong)destination.Length * (ulong)sizeof(T)));
        }
    }

    private T Alive<T>(T value)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return value;
    }
}
