using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives;

/// <summary>
/// Log-probabilities of given tokens under a model's logits: TRL's <c>selective_log_softmax</c>
/// (<c>trl/trainer/utils.py</c>), <c>log_softmax(logits).gather(-1, ids)</c> computed as
/// <c>logits[ids] − logsumexp(logits)</c> in fp32. The preference and RL objectives all score completions with it.
/// </summary>
public static class TokenLogProbs
{
    /// <summary><c>log p(ids[b, t + 1] | ids[b, ≤ t])</c>: logits <c>(B, T, V)</c> of <paramref name="ids"/>
    /// <c>(B, T)</c> → <c>(B, T − 1)</c> fp32 (position t of the result scores token t + 1).</summary>
    public static Tensor Shifted(Tensor logits, Tensor ids)
    {
        using var scope = NewDisposeScope();
        return Of(logits[.., ..^1, ..], ids[.., 1..]).MoveToOuterDisposeScope();
    }

    /// <summary><c>log softmax(logits)[targets]</c>: logits <c>(B, T, V)</c>, targets <c>(B, T)</c> → <c>(B, T)</c> fp32.</summary>
    public static Tensor Of(Tensor logits, Tensor targets)
    {
        using var scope = NewDisposeScope();
        var fp = logits.to(ScalarType.Float32);
        var picked = fp.gather(-1, targets.to(ScalarType.Int64).unsqueeze(-1)).squeeze(-1);
        return (picked - fp.logsumexp(-1)).MoveToOuterDisposeScope();
    }

    /// <summary>Per-position entropy of the softmax of <paramref name="logits"/> <c>(…, V)</c> (TRL's
    /// <c>entropy_from_logits</c>): <c>logsumexp(l) − Σ softmax(l)·l</c>, fp32.</summary>
    public static Tensor Entropy(Tensor logits)
    {
        using var scope = NewDisposeScope();
        var fp = logits.to(ScalarType.Float32);
        return (fp.logsumexp(-1) - (fp.softmax(-1) * fp).sum(-1)).MoveToOuterDisposeScope();
    }
}
