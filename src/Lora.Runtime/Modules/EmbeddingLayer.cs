using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Modules;

/// <summary>Hugging Face <c>nn.Embedding</c>: <c>weight</c> <c>(vocab, dim)</c>; ids <c>(…)</c> → rows <c>(…, dim)</c>.
/// Hosts embedding adapters (<see cref="EmbeddingAdapter"/>, e.g. LoRA's) under <c>adapters.{name}</c>.</summary>
public sealed class EmbeddingLayer : AdapterHost<EmbeddingAdapter>
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

    /// <summary>ids <c>(…)</c> int64 → <c>(…, dim)</c>, with the active, unmerged adapters applied.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        long[] outShape = [.. ids.shape, EmbeddingDim];
        var result = Weight.index_select(0, ids.reshape(-1)).view(outShape);
        if (AdaptersApply)
        {
            foreach (var adapter in UnmergedActiveAdapters)
                result = adapter.AdaptOutput(ids, result);
        }

        return result.MoveToOuterDisposeScope();
    }

    protected override void MergeOne(EmbeddingAdapter adapter, bool safe) => adapter.Merge(this, safe);

    protected override void UnmergeOne(EmbeddingAdapter adapter) => adapter.Unmerge(this);
}
