using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>Default position ids of <see cref="CausalLM.Forward"/> when none are given.</summary>
internal static class PositionIds
{
    /// <summary>
    /// <c>(B, T)</c>: with a mask, <c>cumsum(mask) - 1</c> over past + new positions, last T columns, padding set to 1
    /// (as transformers' <c>generate</c>), so left padding leaves the real tokens at 0, 1, ...; without one,
    /// <c>T_past + arange(T)</c>.
    /// </summary>
    public static Tensor Default(Tensor? attentionMask, long batch, long queryLength, long pastLength, torch.Device device)
    {
        if (attentionMask is not null && attentionMask.ndim == 4)
            throw new ArgumentException("a 4-D attention mask (packed sequences) needs explicit position_ids.", nameof(attentionMask));
        using var scope = NewDisposeScope();
        Tensor positions;
        if (attentionMask is null)
        {
            positions = arange(pastLength, pastLength + queryLength, ScalarType.Int64, device).unsqueeze(0).expand(batch, queryLength);
        }
        else
        {
            var mask = attentionMask.to(ScalarType.Int64, device);
            var all = mask.cumsum(-1) - 1;
            all = all.masked_fill(mask.eq(0), 1);
            positions = all.narrow(1, mask.shape[1] - queryLength, queryLength);
        }

        return positions.MoveToOuterDisposeScope();
    }
}
