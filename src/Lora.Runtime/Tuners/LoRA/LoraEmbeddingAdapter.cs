using Lora.Modules;
using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Tuners.LoRA;

/// <summary>
/// One named LoRA adapter of an embedding table (PEFT's <c>lora.Embedding</c>):
/// <code>
///   Δe(ids) = (A.T[ids] @ B.T) · s       A: lora_embedding_A [r, vocab]   B: lora_embedding_B [dim, r]
///   ΔW = (B @ A).T · s                   [vocab, dim], the same shape as the table
/// </code>
/// PEFT initialises A = 0 and B ~ N(0, 1) (so it starts as a no-op); <c>init_lora_weights=false</c> makes both
/// N(0, 1). There is no dropout on an embedding adapter. Parameter names are PEFT's key suffixes.
/// </summary>
public sealed class LoraEmbeddingAdapter : EmbeddingAdapter
{
    [ComponentName(Name = "lora_embedding_A")]
    public Parameter A;

    [ComponentName(Name = "lora_embedding_B")]
    public Parameter B;

    public LoraEmbeddingAdapter(long numEmbeddings, long embeddingDim, int rank, double alpha, bool useRsLora = false,
        LoraInit init = LoraInit.Default, torch.Device? device = null)
        : base(nameof(LoraEmbeddingAdapter))
    {
        if (rank <= 0)
            throw new LoraException($"LoRA rank must be > 0 (got {rank}).");
        Rank = rank;
        Alpha = alpha;
        Scaling = useRsLora ? alpha / Math.Sqrt(rank) : alpha / rank;
        A = new Parameter(init == LoraInit.Random ? randn(rank, numEmbeddings, device: device) : zeros(rank, numEmbeddings, device: device));
        B = new Parameter(randn(embeddingDim, rank, device: device));
        RegisterComponents();
    }

    public int Rank { get; }

    public double Alpha { get; }

    public double Scaling { get; }

    /// <summary>Δe for ids <c>(…)</c> → <c>(…, dim)</c>.</summary>
    public Tensor Delta(Tensor ids)
    {
        using var scope = NewDisposeScope();
        long[] shape = [.. ids.shape, B.shape[0]];
        var afterA = A.t().index_select(0, ids.reshape(-1));            // (N, r)
        return (afterA.matmul(B.t()) * Scaling).view(shape).MoveToOuterDisposeScope();
    }

    /// <summary>ΔW = (B @ A).T · s, <c>[vocab, dim]</c>.</summary>
    public Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        return (B.matmul(A).t() * Scaling).MoveToOuterDisposeScope();
    }

    public override string MethodName => "LoRA";

    public override Tensor AdaptOutput(Tensor ids, Tensor y) => y + Delta(ids).to(y.dtype);

    public override void Merge(EmbeddingLayer table, bool safe)
    {
        var merged = table.Weight + DeltaWeight().to(table.Weight.dtype);
        if (safe && !merged.isfinite().all().item<bool>())
            throw NotFinite();
        table.Weight.copy_(merged);
    }

    public override void Unmerge(EmbeddingLayer table) =>
        table.Weight.copy_(table.Weight - DeltaWeight().to(table.Weight.dtype));
}
