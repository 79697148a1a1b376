using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Keys and values of past positions, per decoder layer: <c>(B, n_kv_heads, T_past, head_dim)</c> each.
/// A forward pass with a cache attends over past + new positions and appends the new ones.
/// <para>
/// Storage is preallocated, as transformers' <c>StaticCache</c>: each layer owns one key and one value buffer
/// <c>(B, n_kv_heads, Capacity, head_dim)</c>, allocated on the layer's first update; a step writes its positions into
/// the next free slice (<c>narrow + copy_</c>) and attention reads the filled prefix as a view, so decoding copies each
/// key/value once instead of the whole past every token. Built with a capacity (<see cref="CausalLM.NewCache(long)"/>:
/// prompt width + new tokens + virtual tokens), the buffer never moves; without one, or when a pass goes past it, the
/// buffer grows by doubling (amortised one copy per position, like transformers' <c>DynamicCache</c> but without a
/// copy per step).
/// </para>
/// The cache owns its tensors (they live outside any dispose scope); dispose it when generation ends.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys;   // (B, n_kv, capacity, d) buffers; only the first _lengths[layer] positions are valid
    private readonly Tensor?[] _values;
    private readonly long[] _lengths;
    private readonly long _capacity;
    private readonly bool _exact;

    /// <summary>A cache that allocates each layer's buffer for exactly its first pass and grows by doubling.</summary>
    public KvCache(int layers)
        : this(layers, 0)
    {
    }

    /// <summary>A cache whose buffers hold <paramref name="capacity"/> positions (virtual ones included) before they
    /// have to grow; 0 sizes them by the first pass.</summary>
    public KvCache(int layers, long capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
        _lengths = new long[layers];
        _capacity = capacity;
    }

    /// <summary>The cache as it was before it was preallocated (issue #15): every update moves the past into a tensor
    /// of exactly the new length (a <c>cat</c>), so attention reads contiguous keys/values. The reference the
    /// preallocated cache is tested against.</summary>
    internal static KvCache Concatenating(int layers) => new(layers, 0) { Exact = true };

    private bool Exact { init => _exact = value; }

    public int Layers => _keys.Length;

    /// <summary>Number of cached positions (0 before the first forward), virtual ones included.</summary>
    public long Length => _lengths[0];

    /// <summary>Positions the first layer's buffer holds before it grows (the requested capacity before the first
    /// forward).</summary>
    public long Capacity => _keys[0]?.shape[2] ?? _capacity;

    /// <summary>How many of the first cached positions a prompt-learning adapter put there (prefix tuning's key/value
    /// prefixes, the virtual tokens of prompt tuning and P-tuning): attended, but outside the caller's attention mask,
    /// which covers <c>Length - VirtualTokens</c> past positions. 0 without such an adapter.</summary>
    public int VirtualTokens { get; internal set; }

    /// <summary>Appends this step's <paramref name="key"/>/<paramref name="value"/> <c>(B, n_kv, T, d)</c> for
    /// <paramref name="layer"/> and returns the full keys and values (past + new) to attend over: views of the first
    /// <c>T_past + T</c> positions of the layer's buffers (transformers' <c>StaticCache.update</c> writes with
    /// <c>index_copy_</c> and returns the whole buffer, masking the rest; here the view leaves the rest out).</summary>
    public (Tensor Keys, Tensor Values) Update(int layer, Tensor key, Tensor value)
    {
        if (key.ndim != 4 || value.ndim != 4 || key.shape[2] != value.shape[2])
            throw new ArgumentException($"keys and values must be (B, n_kv, T, d) with the same T, got ({string.Join(", ", key.shape)}) and ({string.Join(", ", value.shape)}).", nameof(key));
        var past = _lengths[layer];
        var length = past + key.shape[2];
        Reserve(ref _keys[layer], key, past, length);
        Reserve(ref _values[layer], value, past, length);
        using (var slot = _keys[layer]!.narrow(2, past, key.shape[2]))
            slot.copy_(key);
        using (var slot = _values[layer]!.narrow(2, past, value.shape[2]))
            slot.copy_(value);
        _lengths[layer] = length;
        return (_keys[layer]!.narrow(2, 0, length), _values[layer]!.narrow(2, 0, length));
    }

    /// <summary>Makes <paramref name="buffer"/> hold <paramref name="length"/> positions shaped like
    /// <paramref name="like"/>: allocates it (the requested capacity, or exactly the first pass), or moves its first
    /// <paramref name="past"/> positions into one twice as large.</summary>
    private void Reserve(ref Tensor? buffer, Tensor like, long past, long length)
    {
        if (buffer is not null)
        {
            if (buffer.shape[0] != like.shape[0] || buffer.shape[1] != like.shape[1] || buffer.shape[3] != like.shape[3])
                throw new ArgumentException($"this step's keys/values are ({string.Join(", ", like.shape)}), the cache holds ({string.Join(", ", buffer.shape)}): batch, heads and head size must match (SelectRows changes the batch).");
            if (length <= buffer.shape[2])
                return;
        }

        var capacity = buffer is null ? Math.Max(_capacity, length) : _exact ? length : Math.Max(2 * buffer.shape[2], length);
        var grown = empty([like.shape[0], like.shape[1], capacity, like.shape[3]], like.dtype, like.device).DetachFromDisposeScope();
        if (buffer is not null)
        {
            using var from = buffer.narrow(2, 0, past);
            using var to = grown.narrow(2, 0, past);
            to.copy_(from);
            buffer.Dispose();
        }

        buffer = grown;
    }

    /// <summary>Keeps only the batch rows in <paramref name="rows"/> (e.g. after some sequences finished); the capacity
    /// stays.</summary>
    public void SelectRows(Tensor rows)
    {
        for (var i = 0; i < _keys.Length; i++)
        {
            if (_keys[i] is null)
                continue;
            var k = _keys[i]!.index_select(0, rows).DetachFromDisposeScope();
            var v = _values[i]!.index_select(0, rows).DetachFromDisposeScope();
            _keys[i]!.Dispose();
            _values[i]!.Dispose();
            _keys[i] = k;
            _values[i] = v;
        }
    }

    public void Dispose()
    {
        foreach (var t in _keys.Concat(_values))
            t?.Dispose();
        Array.Clear(_keys);
        Array.Clear(_values);
        Array.Clear(_lengths);
        VirtualTokens = 0;
    }
}
