using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Adapters;

/// <summary>
/// Bookkeeping shared by every layer that hosts adapters: the adapters themselves (under <c>adapters.{name}</c>),
/// which are active, which are merged into the weights, and whether all are disabled. Subclasses supply the math:
/// how to merge and unmerge one adapter, and their forward.
/// </summary>
public abstract class AdaptableModule<TAdapter> : nn.Module<Tensor, Tensor>, IAdapterHost
    where TAdapter : nn.Module
{
    /// <summary>The module name adapters are registered under: <c>{path}.adapters.{name}.…</c>.</summary>
    public const string AdaptersName = "adapters";

    /// <summary>Adapters by name (empty for a plain layer).</summary>
    [ComponentName(Name = AdaptersName)]
    public AdapterDict<TAdapter> Adapters = new();

    private readonly List<string> _active = [];
    private readonly List<string> _merged = [];

    protected AdaptableModule(string name)
        : base(name)
    {
    }

    /// <summary>Adapters whose update is applied in forward (or folded into the weight when merged).</summary>
    public IReadOnlyList<string> ActiveAdapters => _active;

    /// <summary>Adapters currently folded into the weights.</summary>
    public IReadOnlyList<string> MergedAdapters => _merged;

    /// <summary>While true, forward is the base layer alone (merged adapters are unmerged first).</summary>
    public bool AdaptersDisabled { get; private set; }

    public IEnumerable<string> AdapterNames => Adapters.Names;

    public bool HasAdapter(string name) => Adapters.ContainsKey(name);

    /// <summary>True when forward must add adapter outputs (some active adapter is neither merged nor disabled).</summary>
    protected bool AdaptersApply => Adapters.Count > 0 && !AdaptersDisabled && !_active.All(_merged.Contains);

    /// <summary>The active adapters forward adds (not merged).</summary>
    protected IEnumerable<TAdapter> UnmergedActiveAdapters => _active.Where(n => !_merged.Contains(n)).Select(Adapter);

    /// <summary>Adds adapter <paramref name="name"/>; the first one added becomes active.</summary>
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

    /// <summary>The adapter named <paramref name="name"/>.</summary>
    public TAdapter Adapter(string name) =>
        Adapters.TryGetValue(name, out var adapter) ? adapter : throw new LoraException($"no adapter named '{name}' on this layer (has: {string.Join(", ", Adapters.Names)}).");

    /// <summary>Makes exactly <paramref name="names"/> active.</summary>
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
        OnRemoved(name);
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
            MergeOne(name, Adapter(name), safe);
            _merged.Add(name);
        }
    }

    /// <summary>Reverses <see cref="Merge"/> for every merged adapter (exact up to floating-point rounding).</summary>
    public void Unmerge()
    {
        using var noGrad = no_grad();
        for (var i = _merged.Count - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            UnmergeOne(_merged[i], Adapter(_merged[i]));
            _merged.RemoveAt(i);
        }
    }

    /// <summary>Adds adapter <paramref name="name"/>'s update to the weights (throw a LoraException, writing
    /// nothing, when <paramref name="safe"/> and the result is not finite).</summary>
    protected abstract void MergeOne(string name, TAdapter adapter, bool safe);

    /// <summary>Subtracts adapter <paramref name="name"/>'s update from the weights.</summary>
    protected abstract void UnmergeOne(string name, TAdapter adapter);

    /// <summary>Drops per-adapter state a subclass keeps (e.g. cached norms).</summary>
    protected virtual void OnRemoved(string name)
    {
    }

    /// <summary>The error a safe merge raises.</summary>
    protected static LoraException NotFinite(string name) =>
        new($"merging adapter '{name}' would put NaN or Inf into the weights; the adapter is broken, nothing was merged.");
}
