namespace NativeEngine.Modules;

/// <summary>
/// Preallocated keys and values of every self-attention layer, for incremental decoding: each decoding step
/// appends its new keys and values through views (no reallocation) and attends its queries over the cached
/// prefix.
/// </summary>
/// <remarks>
/// <para>Per layer, keys and values are [B, max length, Hkv, D] f32 tensors; positions <c>0 .. Length - 1</c>
/// hold the tokens processed so far. A model's <c>Prefill</c> and <c>DecodeStep</c> write every layer at
/// positions <c>Length ..</c> and then advance <see cref="Length"/>.</para>
/// <para>Ownership: the cache owns its tensors (outside any <see cref="TensorScope"/>); the caller owns the
/// cache and disposes it.</para>
/// </remarks>
public sealed class KeyValueCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;

    /// <summary>Allocates a zero-filled cache.</summary>
    /// <param name="context">The context of the tensors.</param>
    /// <param name="layers">The number of self-attention layers.</param>
    /// <param name="batch">B, the number of sequences decoded together.</param>
    /// <param name="maxLength">The most tokens per sequence.</param>
    /// <param name="kvHeads">Hkv.</param>
    /// <param name="headDim">D.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public KeyValueCache(Context context, int layers, int batch, int maxLength, int kvHeads, int headDim)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kvHeads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        Batch = batch;
        MaxLength = maxLength;
        KvHeads = kvHeads;
        HeadDim = headDim;
        _keys = new Tensor[layers];
        _values = new Tensor[layers];
        try
        {
            for (var i = 0; i < layers; i++)
            {
                _keys[i] = Tensor.Create(context, Dtype.F32, batch, maxLength, kvHeads, headDim).MoveTo(null);
                _values[i] = Tensor.Create(context, Dtype.F32, batch, maxLength, kvHeads, headDim).MoveTo(null);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The number of layers.</summary>
    public int Layers => _keys.Length;

    /// <summary>B.</summary>
    public int Batch { get; }

    /// <summary>The most tokens per sequence.</summary>
    public int MaxLength { get; }

    /// <summary>Hkv.</summary>
    public int KvHeads { get; }

    /// <summary>D.</summary>
    public int HeadDim { get; }

    /// <summary>The number of tokens cached per sequence.</summary>
    public int Length { get; private set; }

    /// <summary>The keys of a layer, [B, max length, Hkv, D] (owned by the cache).</summary>
    /// <param name="layer">The layer.</param>
    /// <returns>The tensor.</returns>
    public Tensor Keys(int layer) => _keys[layer];

    /// <summary>The values of a layer, [B, max length, Hkv, D] (owned by the cache).</summary>
    /// <param name="layer">The layer.</param>
    /// <returns>The tensor.</returns>
    public Tensor Values(int layer) => _values[layer];

    /// <summary>Marks <paramref name="tokens"/> more positions as cached (after every layer wrote them).</summary>
    /// <param name="tokens">The number of new tokens.</param>
    /// <exception cref="ArgumentOutOfRangeException">The cache would exceed <see cref="MaxLength"/>.</exception>
    public void Advance(int tokens)
    {
        if (tokens < 0 || Length + tokens > MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), $"{Length} + {tokens} tokens exceed the cache's {MaxLength} positions.");
        }
        Length += tokens;
    }

    /// <summary>Forgets the cached tokens (the memory is reused).</summary>
    public void Reset() => Length = 0;

    /// <summary>A view of positions [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>)
    /// of a cache tensor, [B, length, Hkv, D].</summary>
    internal Tensor Slice(Tensor cache, long start, long length)
    {
        long rowStride = (long)KvHeads * HeadDim;
        return cache.View(start * rowStride, [Batch, length, KvHeads, HeadDim],
            [MaxLength * rowStride, rowStride, HeadDim, 1]);
    }

    /// <summary>Disposes the tensors. Calling it again does nothing.</summary>
    public void Dispose()
    {
        foreach (var tensor in _keys)
        {
            tensor?.Dispose();
        }
        foreach (var tensor in _values)
        {
            tensor?.Dispose();
        }
    }
}
