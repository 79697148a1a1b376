using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// A layer that carries named adapters of any PEFT method (a linear layer, an embedding table): what model-wide
/// operations (<see cref="PeftModelExtensions"/>) apply to every one of them at once. Adapters are child modules
/// registered under <c>adapters.{name}</c>, their parameters named as PEFT's key suffixes (<c>lora_A.weight</c>,
/// <c>ia3_l</c>, ...).
/// </summary>
public interface IAdapterHost
{
    IEnumerable<string> AdapterNames { get; }

    /// <summary>Adapters whose update applies in forward (or is folded into the weights when merged).</summary>
    IReadOnlyList<string> ActiveAdapters { get; }

    /// <summary>Adapters currently folded into the weights.</summary>
    IReadOnlyList<string> MergedAdapters { get; }

    /// <summary>While true, forward is the base layer alone.</summary>
    bool AdaptersDisabled { get; }

    bool HasAdapter(string name);

    /// <summary>The adapter module named <paramref name="name"/>.</summary>
    nn.Module GetAdapter(string name);

    void SetActiveAdapters(IEnumerable<string> names);

    void SetAdaptersDisabled(bool disabled);

    /// <summary>Folds the active, unmerged adapters into the weights (<paramref name="safe"/>: refuse NaN/Inf).</summary>
    void Merge(bool safe = true);

    void Unmerge();

    /// <summary>Removes an adapter, unmerging it first.</summary>
    void DeleteAdapter(string name);

    /// <summary>Removes an adapter as is (a merged update stays in the weights).</summary>
    void Remove(string name);
}

/// <summary>
/// A host of adapters of one kind: <see cref="LinearAdapter"/> (linear layers, whatever their base-layer kind) or
/// <see cref="EmbeddingAdapter"/> (embedding tables). A PEFT method provides adapters for the kinds it supports; the
/// source generator classifies a model's layers by this interface.
/// </summary>
/// <typeparam name="TAdapter">The adapter kind.</typeparam>
public interface IAdapterHost<TAdapter> : IAdapterHost
    where TAdapter : nn.Module
{
    /// <summary>Adds an adapter; the first one added becomes active.</summary>
    TAdapter AddAdapter(string name, TAdapter adapter);

    /// <summary>The adapter named <paramref name="name"/> (an error naming the adapters there are, if none).</summary>
    TAdapter Adapter(string name);
}
