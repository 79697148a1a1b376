using Lora.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Modules;

/// <summary>Hugging Face <c>nn.Embedding</c>: <c>weight</c> <c>(vocab, dim)</c>; ids <c>(…)</c> → rows <c>(…, dim)</c>.
/// Hosts LoRA embedding adapters (<see cref="LoraEmbeddingAdapter"/>) under <c>adapters.{name}</c>.</summary>
public sealed class EmbeddingLayer : AdaptableModule<LoraEmbeddingAdapter>
{
    /// <summary><c>(vocab, dim)</c>.</summary>
    [ComponentName(Name = "weight")]
    public Parameter Weight;

    /// <summary>A table with uninitialised rows (fill them with a checkpoint or <c>InitializeWeights</c>).</summary>
    public EmbeddingLayer(long numEmbeddings, long embeddingDim, ScalarType dtype = ScalarType.Float32, torch.Device? device = null)
        : base(nameof(EmbeddingLayer))
    {
        NumEmbeddings = numEmbeddings;
        EmbeddingDim = embeddingDim;
        Weight = new Parameter(empty([numEmbeddings, embeddingDim], dtype, device));
        RegisterComponents();
    }

    public long NumEmbeddings { get; }

    public long EmbeddingDim { get; }

    /// <summary>ids <c>(…)</c> int64 → <c>(…, dim)</c>, plus the active, unmerged adapters.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        long[] outShape = [.. ids.shape, EmbeddingDim];
        var result = Weight.index_select(0, ids.reshape(-1)).view(outShape);
        if (AdaptersApply)
        {
            foreach (var adapter in UnmergedActiveAdapters)
                result = result + adapter.call(ids).to(result.dtype);
        }

        return result.MoveToOuterDisposeScope();
    }

    protected override void MergeOne(string name, LoraEmbeddingAdapter adapter, bool safe)
    {
        var merged = Weight + adapter.DeltaWeight().to(Weight.dtype);
        if (safe && !merged.isfinite().all().item<bool>())
            throw NotFinite(name);
        Weight.copy_(merged);
    }

    protected override void UnmergeOne(string name, LoraEmbeddingAdapter adapter) =>
        Weight.copy_(Weight - adapter.DeltaWeight().to(Weight.dtype));
}
