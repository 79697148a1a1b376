namespace Lora.Data;

/// <summary>
/// One packed row: several examples back to back. <see cref="PositionIds"/> restart at 0 with each example and
/// <see cref="SegmentIds"/> number the examples in the row (0, 1, ...), so attention can be kept inside each one
/// (<see cref="PackedAttentionMask"/>). The first label of each example is -100: nothing predicts across a boundary.
/// </summary>
public sealed record PackedSequence(int[] InputIds, int[] Labels, int[] PositionIds, int[] SegmentIds)
{
    public int Length => InputIds.Length;
}
