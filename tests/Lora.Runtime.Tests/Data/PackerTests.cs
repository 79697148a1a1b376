using Lora.Data;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Data;

public class PackerTests
{
    private static TokenizedExample Example(int first, int length, int prompt = 0) =>
        new([.. Enumerable.Range(first, length)], [.. Enumerable.Range(first, length).Select((id, i) => i < prompt ? TokenizedExample.IgnoreIndex : id)]);

    [Fact]
    public void Packs_into_full_rows_restarting_positions_and_masking_each_first_label()
    {
        // lengths 3, 4, 5, 2 into rows of 6: [a a a b b b] [b c c c c c] [d d]
        var rows = Packer.Pack([Example(10, 3), Example(20, 4), Example(30, 5), Example(40, 2)], maxLength: 6).ToList();

        Assert.Equal([6, 6, 2], rows.Select(r => r.Length));
        Assert.Equal([10, 11, 12, 20, 21, 22], rows[0].InputIds);
        Assert.Equal([0, 1, 2, 0, 1, 2], rows[0].PositionIds);
        Assert.Equal([0, 0, 0, 1, 1, 1], rows[0].SegmentIds);
        Assert.Equal([-100, 11, 12, -100, 21, 22], rows[0].Labels);

        Assert.Equal([23, 30, 31, 32, 33, 34], rows[1].InputIds);
        Assert.Equal([3, 0, 1, 2, 3, 4], rows[1].PositionIds);   // the cut example continues its positions
        Assert.Equal([0, 1, 1, 1, 1, 1], rows[1].SegmentIds);
        Assert.Equal([23, -100, 31, 32, 33, 34], rows[1].Labels);

        Assert.Equal([-100, 41], rows[2].Labels);
        Assert.Equal([0, 1], rows[2].PositionIds);
        Assert.Equal([0, 0], rows[2].SegmentIds);
    }

    [Fact]
    public void Prompt_masks_are_kept_inside_packed_rows()
    {
        var row = Assert.Single(Packer.Pack([Example(1, 4, prompt: 2), Example(5, 3, prompt: 1)], maxLength: 8));
        Assert.Equal([-100, -100, 3, 4, -100, 6, 7], row.Labels);
    }

    [Fact]
    public void Mask_is_block_diagonal_and_causal()
    {
        var row = Packer.Pack([Example(1, 3), Example(5, 2)], maxLength: 8).Single();
        using var batch = new Collator(padTokenId: 0).Collate([row, Packer.Pack([Example(9, 2)], 8).Single()]);
        Assert.NotNull(batch.PackedMask);
        Assert.Equal(new long[] { 2, 1, 5, 5 }, batch.PackedMask!.shape);
        Assert.Equal(ScalarType.Bool, batch.PackedMask.dtype);
        var mask = batch.PackedMask;
        bool At(int b, int q, int k) => mask[b, 0, q, k].item<bool>();

        Assert.True(At(0, 0, 0));
        Assert.True(At(0, 2, 0));      // same example, earlier token
        Assert.False(At(0, 0, 1));     // future token
        Assert.False(At(0, 3, 2));     // previous example
        Assert.True(At(0, 4, 3));
        Assert.True(At(0, 3, 3));
        Assert.True(At(1, 1, 0));
        Assert.False(At(1, 2, 1));     // padding is never attended by real tokens
        Assert.False(At(1, 1, 2));
        Assert.True(At(1, 4, 4));      // a padding row is not empty (no NaN after softmax)
        Assert.Equal(new long[] { 0, 0, 0, 1, 1 }, batch.SegmentIds!.data<long>().ToArray()[..5]);
        Assert.Equal(new long[] { 0, 0, -1, -1, -1 }, batch.SegmentIds.data<long>().ToArray()[5..]);

        // The mask equals the plain causal tril restricted to same-segment pairs.
        using var expected = ones(5, 5, ScalarType.Bool).tril();
        Assert.True(mask[0, 0, ..3, ..3].eq(expected[..3, ..3]).all().item<bool>());
        Assert.True(mask[0, 0, 3.., 3..].eq(expected[..2, ..2]).all().item<bool>());
        Assert.False(mask[0, 0, 3.., ..3].any().item<bool>());
    }
}
