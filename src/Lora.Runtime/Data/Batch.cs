using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Data;

/// <summary>
/// One collated batch, right-padded to its longest row. All tensors are <c>(B, T)</c> int64 except
/// <see cref="PackedMask"/>. The batch owns its tensors: dispose it after the step.
/// </summary>
public sealed class Batch : IDisposable
{
    internal Batch(Tensor inputIds, Tensor labels, Tensor attentionMask, Tensor positionIds, Tensor? segmentIds, Tensor? packedMask, long inputTokens, long labelTokens)
    {
        InputIds = inputIds;
        Labels = labels;
        AttentionMask = attentionMask;
        PositionIds = positionIds;
        SegmentIds = segmentIds;
        PackedMask = packedMask;
        InputTokens = inputTokens;
        LabelTokens = labelTokens;
    }

    /// <summary>Token ids, the pad id on padding.</summary>
    public Tensor InputIds { get; }

    /// <summary>Labels, -100 on ignored positions and padding (not yet shifted: the loss shifts).</summary>
    public Tensor Labels { get; }

    /// <summary>1 = token, 0 = padding (transformers' <c>attention_mask</c>).</summary>
    public Tensor AttentionMask { get; }

    /// <summary>0, 1, ... per example (restarting inside packed rows); padding continues the count.</summary>
    public Tensor PositionIds { get; }

    /// <summary>Packed batches only: the example index of each token in its row, -1 on padding.</summary>
    public Tensor? SegmentIds { get; }

    /// <summary>Packed batches only (when asked for): <c>(B, 1, T, T)</c> bool block-diagonal causal mask, true = may attend.</summary>
    public Tensor? PackedMask { get; }

    public long BatchSize => InputIds.shape[0];

    public long SequenceLength => InputIds.shape[1];

    /// <summary>Non-padding tokens.</summary>
    public long InputTokens { get; }

    /// <summary>
    /// Labels that count in the loss after the shift (<c>labels[:, 1:] != -100</c>), the same count
    /// <see cref="Training.CausalLMLoss.Sum"/> returns. Sum it over the accumulation steps to normalise (C15).
    /// </summary>
    public long LabelTokens { get; }

    /// <summary>A copy on <paramref name="device"/> (this batch stays as it is).</summary>
    public Batch To(torch.Device device) => new(
        InputIds.to(device), Labels.to(device), AttentionMask.to(device), PositionIds.to(device),
        SegmentIds?.to(device), PackedMask?.to(device), InputTokens, LabelTokens);

    public void Dispose()
    {
        InputIds.Dispose();
        Labels.Dispose();
        AttentionMask.Dispose();
        PositionIds.Dispose();
        SegmentIds?.Dispose();
        PackedMask?.Dispose();
    }
}
