using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// The boolean attention mask of a decoder (true = attend): causal over past + new positions, combined with the
/// padding mask of transformers (<c>attention_mask</c> <c>(B, T_past + T)</c>, 1 = token, 0 = padding); or a
/// ready-made 4-D mask <c>(B, 1, T, T_past + T)</c> (packed sequences), used as is.
/// </summary>
internal static class AttentionMask
{
    /// <summary>
    /// <c>(B, 1, T, T_past + T)</c>, or null when there is no padding and the pass is plain causal attention: no past
    /// (the attention kernel's own causal path), or a single query, which attends every key (a decode step; with a
    /// mask of all true the kernel could not use its fastest path, nor grouped-query attention without repeating K/V).
    /// Query <c>i</c> sits at key index <c>T_past + i</c>.
    /// A query that is itself padding may attend to itself, so no row is empty: an empty row is NaN after softmax,
    /// and NaN values at padded positions would leak into real tokens (0 · NaN) in the next layer.
    /// </summary>
    public static Tensor? Build(Tensor? attentionMask, long batch, long queryLength, long pastLength, torch.Device device)
    {
        var keyLength = pastLength + queryLength;
        if (attentionMask is not null && attentionMask.ndim == 4)
        {
            // A ready-made (B, 1, T, T_past + T) mask, true = attend: packed sequences (block-diagonal causal).
            if (attentionMask.shape[0] != batch || attentionMask.shape[1] != 1 || attentionMask.shape[2] != queryLength || attentionMask.shape[3] != keyLength)
                throw new ArgumentException($"a 4-D attention_mask must be (B, 1, T, T_past + T) = ({batch}, 1, {queryLength}, {keyLength}), got ({string.Join(", ", attentionMask.shape)}).", nameof(attentionMask));
            return attentionMask.to(ScalarType.Bool, device);
        }

        if (attentionMask is not null && (attentionMask.ndim != 2 || attentionMask.shape[0] != batch || attentionMask.shape[1] != keyLength))
        {
            throw new ArgumentException(
                $"attention_mask must be (B, T_past + T) = ({batch}, {keyLength}), got ({string.Join(", ", attentionMask.shape)}).",
                nameof(attentionMask));
        }

        if (attentionMask is null && (pastLength == 0 || queryLength == 1))
            return null;

        using var scope = NewDisposeScope();
        var keys = arange(keyLength, ScalarType.Int64, device).unsqueeze(0);                  // (1, Tk)
        var queries = arange(pastLength, keyLength, ScalarType.Int64, device).unsqueeze(1);   // (T, 1)
        var allowed = keys.le(queries);                                                         // (T, Tk) causal
        Tensor mask;
        if (attentionMask is null)
        {
            mask = allowed.unsqueeze(0).unsqueeze(0).expand(batch, 1, queryLength, keyLength);
        }
        else
        {
            var padding = attentionMask.to(device).ne(0).unsqueeze(1);                          // (B, 1, Tk)
            var self = keys.eq(queries).unsqueeze(0);                                               // (1, T, Tk)
            mask = allowed.unsqueeze(0).logical_and(padding).logical_or(self).unsqueeze(1);        // (B, 1, T, Tk)
        }

        return mask.MoveToOuterDisposeScope();
    }
}
