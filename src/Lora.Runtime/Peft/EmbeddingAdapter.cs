using Lora.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// One named adapter of an embedding table, of any PEFT method: <c>rows(ids) → AdaptOutput(ids, rows)</c> for each
/// active, unmerged adapter, and how it folds into the table.
/// </summary>
public abstract class EmbeddingAdapter : nn.Module
{
    protected EmbeddingAdapter(string name)
        : base(name)
    {
    }

    /// <summary>The PEFT method's name, for display (<c>LoRA</c>, <c>IA3</c>).</summary>
    public abstract string MethodName { get; }

    /// <summary>The rows <paramref name="y"/> <c>(…, dim)</c> looked up for <paramref name="ids"/> with this adapter applied.</summary>
    public abstract Tensor AdaptOutput(Tensor ids, Tensor y);

    /// <summary>Folds the update into the table (safe: refuse NaN/Inf, writing nothing). Runs under no_grad.</summary>
    public abstract void Merge(EmbeddingLayer table, bool safe);

    /// <summary>Reverses <see cref="Merge"/>.</summary>
    public abstract void Unmerge(EmbeddingLayer table);

    /// <summary>The error a safe merge raises.</summary>
    protected static LoraException NotFinite() =>
        new("merging would put NaN or Inf into the weights; the adapter is broken, nothing was merged.");
}
