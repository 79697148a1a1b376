using Lora.Tokenization;
using static TorchSharp.torch;

namespace Lora.Data;

/// <summary>
/// Stacks examples into a <see cref="Batch"/>, padding on the right to the longest row with the pad id and -100
/// labels (transformers' <c>DataCollatorForSeq2Seq</c> / TRL's collator with <c>padding_side="right"</c>).
/// </summary>
public sealed class Collator
{
    /// <param name="padTokenId">The id written on padding (see <see cref="PadIdOf"/>); it is never predicted.</param>
    /// <param name="packedMask">Build the <c>(B, 1, T, T)</c> mask for packed batches (B·T² bytes).</param>
    /// <param name="padToMultipleOf">Round T up to a multiple of this (1 = no rounding).</param>
    public Collator(int padTokenId, bool packedMask = true, int padToMultipleOf = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(padToMultipleOf, 1);
        PadTokenId = padTokenId;
        BuildPackedMask = packedMask;
        PadToMultipleOf = padToMultipleOf;
    }

    public int PadTokenId { get; }

    public bool BuildPackedMask { get; }

    public int PadToMultipleOf { get; }

    /// <summary>The tokenizer's pad token, else its eos, else 0 (what TRL and most recipes fall back to).</summary>
    public static int PadIdOf(HfTokenizer tokenizer) => tokenizer.PadTokenId ?? tokenizer.EosTokenId ?? 0;

    /// <summary>Unpacked examples; position ids are 0..T-1 per row.</summary>
    public Batch Collate(IReadOnlyList<TokenizedExample> examples)
    {
        ArgumentNullException.ThrowIfNull(examples);
        return Build(examples.Select(e => (e.InputIds, e.Labels, (int[]?)null, (int[]?)null)).ToList(), packed: false);
    }

    /// <summary>Packed rows; also gives <see cref="Batch.SegmentIds"/> and (optionally) <see cref="Batch.PackedMask"/>.</summary>
    public Batch Collate(IReadOnlyList<PackedSequence> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return Build(rows.Select(r => (r.InputIds, r.Labels, (int[]?)r.PositionIds, (int[]?)r.SegmentIds)).ToList(), packed: true);
    }

    private Batch Build(List<(int[] Ids, int[] Labels, int[]? Positions, int[]? Segments)> rows, bool packed)
    {
        if (rows.Count == 0)
            throw new ArgumentException("a batch needs at least one example.", nameof(rows));
        var longest = rows.Max(r => r.Ids.Length);
        if (longest == 0)
            throw new ArgumentException("every example in the batch is empty.", nameof(rows));
        var length = (longest + PadToMultipleOf - 1) / PadToMultipleOf * PadToMultipleOf;
        var size = rows.Count * length;
        var ids = new long[size];
        var labels = new long[size];
        var mask = new long[size];
        var positions = new long[size];
        var segments = packed ? new long[size] : null;
        long inputTokens = 0, labelTokens = 0;
        for (var b = 0; b < rows.Count; b++)
        {
            var (rowIds, rowLabels, rowPositions, rowSegments) = rows[b];
            if (rowLabels.Length != rowIds.Length)
                throw new ArgumentException($"example {b} has {rowIds.Length} ids but {rowLabels.Length} labels.", nameof(rows));
            var n = rowIds.Length;
            inputTokens += n;
            for (var t = 0; t < length; t++)
            {
                var at = b * length + t;
                var real = t < n;
                ids[at] = real ? rowIds[t] : PadTokenId;
                labels[at] = real ? rowLabels[t] : TokenizedExample.IgnoreIndex;
                mask[at] = real ? 1 : 0;
                positions[at] = real && rowPositions is not null ? rowPositions[t] : t;
                if (segments is not null)
                    segments[at] = real ? rowSegments![t] : -1;
                if (t > 0 && labels[at] != TokenizedExample.IgnoreIndex)
                    labelTokens++;
            }
        }

        long[] shape = [rows.Count, length];
        var segmentTensor = segments is null ? null : tensor(segments, shape);
        var packedMask = segmentTensor is not null && BuildPackedMask ? PackedAttentionMask.FromSegments(segmentTensor) : null;
        return new Batch(tensor(ids, shape), tensor(labels, shape), tensor(mask, shape), tensor(positions, shape), segmentTensor, packedMask, inputTokens, labelTokens);
    }
}
