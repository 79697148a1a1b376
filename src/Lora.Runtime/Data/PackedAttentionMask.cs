using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Data;

/// <summary>
/// The block-diagonal causal mask of packed rows: a token may attend to an earlier (or the same) token of its own
/// example only. Padding has segment -1, so it attends only to padding (never an empty row, which would be NaN
/// after softmax) and real tokens never attend to it.
/// </summary>
public static class PackedAttentionMask
{
    /// <summary><c>(B, 1, T, T)</c> bool, true = may attend, from <c>(B, T)</c> integer segment ids.</summary>
    public static Tensor FromSegments(Tensor segmentIds)
    {
        if (segmentIds.ndim != 2)
            throw new ArgumentException($"segment ids must be (B, T), got ({string.Join(", ", segmentIds.shape)}).", nameof(segmentIds));
        using var scope = NewDisposeScope();
        var length = segmentIds.shape[1];
        var same = segmentIds.unsqueeze(2).eq(segmentIds.unsqueeze(1));                    // (B, T, T)
        var causal = ones(length, length, ScalarType.Bool, segmentIds.device).tril();        // (T, T)
        return same.logical_and(causal).unsqueeze(1).MoveToOuterDisposeScope();            // (B, 1, T, T)
    }
}
