using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// transformers' <c>ForCausalLMLoss</c> as a sum: logits upcast to fp32, labels shifted left by one (position t
/// predicts token t+1), cross-entropy summed over positions whose label is not -100. Callers divide by the token
/// count of the whole (accumulated) batch, which makes gradient accumulation exact.
/// </summary>
public static class CausalLMLoss
{
    /// <summary>Summed token loss (a scalar tensor, differentiable) and the number of tokens it covers. Counting the
    /// tokens reads a value back from the device (a synchronisation): the training step uses <see cref="TokenSum"/>,
    /// its token count being known on the host from the collated batch (<see cref="Data.Batch.LabelTokens"/>).</summary>
    /// <param name="logits"><c>(B, T, V)</c>.</param>
    /// <param name="labels"><c>(B, T)</c> int64, -100 = ignored.</param>
    public static (Tensor Sum, long Tokens) Sum(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var tokens = labels[.., 1..].ne(Data.TokenizedExample.IgnoreIndex).sum().item<long>();
        return (TokenSum(logits, labels).MoveToOuterDisposeScope(), tokens);
    }

    /// <summary>Summed token loss (a scalar fp32 tensor, differentiable), without reading anything back.</summary>
    /// <param name="logits"><c>(B, T, V)</c>.</param>
    /// <param name="labels"><c>(B, T)</c> int64, -100 = ignored.</param>
    public static Tensor TokenSum(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var vocab = logits.shape[^1];
        var shiftedLogits = logits[.., ..^1, ..].to(ScalarType.Float32).reshape(-1, vocab);
        var shiftedLabels = labels[.., 1..].reshape(-1);
        var sum = nn.functional.cross_entropy(shiftedLogits, shiftedLabels, ignore_index: Data.TokenizedExample.IgnoreIndex, reduction: nn.Reduction.Sum);
        return sum.MoveToOuterDisposeScope();
    }
}
