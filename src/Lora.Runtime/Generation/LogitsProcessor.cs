using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generation;

/// <summary>
/// The transformers logits pipeline, in its order: repetition penalty, then (when sampling) temperature, top-k,
/// top-p. All functions take next-token scores <c>(B, V)</c> and return new scores; removed tokens get -inf.
/// </summary>
public static class LogitsProcessor
{
    /// <summary>For each token id present in <paramref name="seen"/> <c>(B, L)</c>: score &lt; 0 ? score·p : score/p.</summary>
    public static Tensor RepetitionPenalty(Tensor scores, Tensor seen, double penalty)
    {
        if (penalty == 1.0)
            return scores.alias();
        using var scope = NewDisposeScope();
        var picked = scores.gather(1, seen);
        var penalised = where(picked < 0, picked * penalty, picked / penalty);
        return scores.scatter(1, seen, penalised).MoveToOuterDisposeScope();
    }

    public static Tensor Temperature(Tensor scores, double temperature) =>
        temperature == 1.0 ? scores.alias() : scores / temperature;

    /// <summary>Keeps the <paramref name="k"/> highest scores per row.</summary>
    public static Tensor TopK(Tensor scores, int k)
    {
        if (k <= 0 || k >= scores.shape[^1])
            return scores.alias();
        using var scope = NewDisposeScope();
        var (values, _) = scores.topk(k, dim: -1);
        var threshold = values[.., ^1..];
        return scores.masked_fill(scores < threshold, float.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>Nucleus filtering as transformers does it: sort ascending, drop tokens whose cumulative probability
    /// is &lt;= 1 - p, always keep the most likely token.</summary>
    public static Tensor TopP(Tensor scores, double p)
    {
        if (p >= 1.0)
            return scores.alias();
        using var scope = NewDisposeScope();
        var (sorted, indices) = scores.sort(dim: -1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        var removeSorted = cumulative <= (1 - p);
        removeSorted[.., ^1] = tensor(false);
        var remove = removeSorted.scatter(1, indices, removeSorted);
        return scores.masked_fill(remove, float.NegativeInfinity).MoveToOuterDisposeScope();
    }
}
