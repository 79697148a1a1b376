using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Keys and values of past positions, per decoder layer: <c>(B, n_kv_heads, T_past, head_dim)</c> each.
/// A forward pass with a cache attends over past + new positions and appends the new ones.
/// The cache owns its tensors (they live outside any dispose scope); dispose it when generation ends.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;

    public KvCache(int layers)
    {
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
    }

    public int Layers => _keys.Length;

    /// <summary>Number of cached positions (0 before the first forward), virtual ones included.</summary>
    public long Length => _keys[0]?.shape[2] ?? 0;

    /// <summary>How many of the first cached positions a prompt-learning adapter put there (prefix tuning's key/value
    /// prefixes, the virtual tokens of prompt tuning and P-tuning): attended, but outside the caller's attention mask,
    /// which covers <c>Length - VirtualTokens</c> past positions. 0 without such an adapter.</summary>
    public int VirtualTokens { get; internal set; }

    /// <summary>Appends this step's <paramref name="key"/>/<paramref name="value"/> for <paramref name="layer"/> and
    /// returns the full keys and values (past + new) to attend over.</summary>
    public (Tensor Keys, Tensor Values) Update(int layer, Tensor key, Tensor value)
    {
        var k = _keys[layer] is { } pk ? cat([pk, key], 2) : key.alias();
        var v = _values[layer] is { } pv ? cat([pv, value], 2) : value.alias();
        _keys[layer]?.Dispose();
        _values[layer]?.Dispose();
        _keys[layer] = k.DetachFromDisposeScope();
        _values[layer] = v.DetachFromDisposeScope();
        return (k.alias(), v.alias());
    }

    /// <summary>Keeps only the batch rows in <paramref name="rows"/> (e.g. after some sequences finished).</summary>
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
        VirtualTokens = 0;
    }
}
