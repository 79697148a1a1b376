using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// Bookkeeping shared by every layer that hosts adapters (PEFT's <c>BaseTunerLayer</c>): the adapters themselves
/// (under <c>adapters.{name}</c>), which are active, which are merged into the weights, and whether all are
/// disabled. The adapters carry the math; a host supplies how one of them merges into its storage.
/// </summary>
/// <typeparam name="TAdapter">The adapter kind this host carries.</typeparam>
public abstract class AdapterHost<TAdapter> : nn.Module<Tensor, Tensor>, IAdapterHost<TAdapter>
    where TAdapter : nn.Module
{
    /// <summary>The module name adapters are registered under: <c>{path}.adapters.{name}.…</c>.</summary>
    public const string AdaptersName = "adapters";

    /// <summary>Adapters by name (empty for a plain layer).</summary>
    [ComponentName(Name = AdaptersName)]
    public AdapterDict<TAdapter> Adapters = new();

    private readonly List<string> _active = [];
    private readonly List<string> _merged = [];

    protected AdapterHost(string name)
        : base(name)
    {
    }

    public IReadOnlyList<string> ActiveAdapters => _active;

    public IReadOnlyList<string> MergedAdapters => _merged;

    public bool AdaptersDisabled { get; private set; }

    public IEnumerable<string> AdapterNames => Adapters.Names;

    public bool HasAdapter(string name) => Adapters.ContainsKey(name);

    public nn.Module GetAdapter(string name) => Adapter(name);

    /// <summary>True when forward must apply adapters (some active adapter is neither merged nor disabled).</summary>
    protected bool AdaptersApply => Adapters.Count > 0 && !AdaptersDisabled && !_active.All(_merged.Contains);

    /// <summary>The active adapters forward applies (not merged), in activation order.</summary>
    protected IEnumerable<TAdapter> UnmergedActiveAdapters => _active.Where(n => !_merged.Contains(n)).Select(Adapter);

    public TAdapter AddAdapter(string name, TAdapter adapter)
    {
        if (Adapters.ContainsKey(name))
            throw new LoraException($"adapter '{name}' already exists on this layer.");
        if (_merged.Count > 0)
            throw new LoraException($"cannot add adapter '{name}' while adapters are merged; unmerge first.");
        Adapters.Add(name, adapter);
        if (_active.Count == 0)
            _active.Add(name);
        return adapter;
    }

    public TAdapter Adapter(string name) =>
        Adapters.TryGetValue(name, out var adapter) ? adapter : throw new LoraException($"no adapter named '{name}' on this layer (has: {string.Join(", ", Adapters.Names)}).");

    public void SetActiveAdapters(IEnumerable<string> names)
    {
        var list = names.ToList();
        foreach (var n in list)
            Adapter(n);
        if (_merged.Count > 0)
            throw new LoraException("cannot change the active adapters while adapters are merged; unmerge first.");
        _active.Clear();
        _active.AddRange(list);
    }

    /// <summary>Turns adapters off (true) or back on; disabling unmerges merged adapters first, as PEFT does.</summary>
    public void SetAdaptersDisabled(bool disabled)
    {
        if (disabled && _merged.Count > 0)
            Unmerge();
        AdaptersDisabled = disabled;
    }

    public void DeleteAdapter(string name)
    {
        if (_merged.Contains(name))
            Unmerge();
        Remove(name);
    }

    public void Remove(string name)
    {
        var adapter = Adapter(name);
        Adapters.Remove(name);
        _active.Remove(name);
        _merged.Remove(name);
        OnRemoved(adapter);
        adapter.Dispose();
    }

    /// <summary>Folds the active, unmerged adapters into the weights. With <paramref name="safe"/>, each new weight is
    /// computed aside and checked for NaN/Inf before anything is written.</summary>
    public void Merge(bool safe = true)
    {
        using var noGrad = no_grad();
        foreach (var name in _active.Where(n => !_merged.Contains(n)).ToList())
        {
            using var scope = NewDisposeScope();
            try
            {
                MergeOne(Adapter(name), safe);
            }
            catch (LoraException e)
            {
                throw new LoraException($"adapter '{name}': {e.Message}", e);
            }

            _merged.Add(name);
        }
    }

    /// <summary>Reverses <see cref="Merge"/> for every merged adapter, newest first.</summary>
    public void Unmerge()
    {
        using var noGrad = no_grad();
        for (var i = _merged.Count - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            UnmergeOne(Adapter(_merged[i]));
            _merged.RemoveAt(i);
        }
    }

    /// <summary>Adds one adapter's update to this layer's weights (the adapter computes it).</summary>
    protected abstract void MergeOne(TAdapter adapter, bool safe);

    /// <summary>Subtracts one adapter's update from this layer's weights.</summary>
    protected abstract void UnmergeOne(TAdapter adapter);

    /// <summary>An adapter was removed (drop what was kept for it).</summary>
    protected virtual void OnRemoved(TAdapter adapter)
    {
    }
}
