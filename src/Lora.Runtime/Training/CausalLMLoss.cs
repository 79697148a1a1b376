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
    /// <summary>Summed token loss (a scalar tensor, differentiable) and the number of tokens it covers.</summary>
    /// <param name="logits"><c>(B, T, V)</c>; with prompt tuning or P-tuning <c>(B, n + T, V)</c>: the first
    /// <c>n</c> are the virtual positions, whose labels are -100 (PEFT pads the labels in front, so the last virtual
    /// position predicts the first token).</param>
    /// <param name="labels"><c>(B, T)</c> int64, -100 = ignored.</param>
    public static (Tensor Sum, long Tokens) Sum(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        if (logits.shape[1] > labels.shape[1])
        {
            // PeftModelForCausalLM.forward: labels = cat(full((B, n), -100), labels) for virtual input tokens.
            var virtualTokens = logits.shape[1] - labels.shape[1];
            labels = cat([full(labels.shape[0], virtualTokens, Data.TokenizedExample.IgnoreIndex, labels.dtype, labels.device), labels], 1);
        }

        var vocab = logits.shape[^1];
        var shiftedLogits = logits[.., ..^1, ..].to(ScalarType.Float32).reshape(-1, vocab);
        var shiftedLabels = labels[.., 1..].reshape(-1);
        var tokens = shiftedLabels.ne(Data.TokenizedExample.IgnoreIndex).sum().item<long>();
        var sum = nn.functional.cross_entropy(shiftedLogits, shiftedLabels, ignore_index: Data.TokenizedExample.IgnoreIndex, reduction: nn.Reduction.Sum);
        return (sum.MoveToOuterDisposeScope(), tokens);
    }
}
