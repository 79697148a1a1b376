using Lora.Data;
using Lora.Tests;
using Lora.Tokenization;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Data;

public class CollatorTests
{
    [Fact]
    public void Pads_on_the_right_with_the_pad_id_and_ignored_labels()
    {
        var examples = new[]
        {
            new TokenizedExample([5, 6, 7], [-100, 6, 7]),
            new TokenizedExample([8, 9], [-100, 9]),
        };
        using var batch = new Collator(padTokenId: 0).Collate(examples);

        Assert.Equal(new long[] { 2, 3 }, batch.InputIds.shape);
        Assert.All(new[] { batch.InputIds, batch.Labels, batch.AttentionMask, batch.PositionIds }, t => Assert.Equal(ScalarType.Int64, t.dtype));
        Assert.Equal(new long[] { 5, 6, 7, 8, 9, 0 }, batch.InputIds.data<long>().ToArray());
        Assert.Equal(new long[] { -100, 6, 7, -100, 9, -100 }, batch.Labels.data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 0 }, batch.AttentionMask.data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, 2, 0, 1, 2 }, batch.PositionIds.data<long>().ToArray());
        Assert.Null(batch.PackedMask);
        Assert.Equal(5, batch.InputTokens);
        Assert.Equal(3, batch.LabelTokens);
    }

    [Fact]
    public void Label_tokens_match_the_loss_count()
    {
        var examples = new[] { new TokenizedExample([1, 2, 3, 4], [1, -100, 3, 4]), new TokenizedExample([5], [5]) };
        using var batch = new Collator(padTokenId: 0, padToMultipleOf: 8).Collate(examples);
        Assert.Equal(8, batch.SequenceLength);
        using var logits = zeros(2, 8, 10);
        var (sum, tokens) = Lora.Training.CausalLMLoss.Sum(logits, batch.Labels);
        sum.Dispose();
        Assert.Equal(tokens, batch.LabelTokens);
        Assert.Equal(2, batch.LabelTokens);
    }

    [Theory]
    [InlineData("qwen3", "<|endoftext|>")]
    [InlineData("llama2", "</s>")]
    public void Pad_id_is_pad_else_eos(string name, string expected)
    {
        var tokenizer = HfTokenizer.Load(TokenizerFixtures.Directory(name));
        Assert.Equal(tokenizer.TokenToId(expected), Collator.PadIdOf(tokenizer));
    }

    [Fact]
    public void Packed_rows_keep_their_position_ids_and_pad_the_short_last_row()
    {
        var rows = Packer.Pack([new TokenizedExample([1, 2, 3], [1, 2, 3]), new TokenizedExample([4, 5, 6], [4, 5, 6])], maxLength: 4).ToList();
        // rows: [1 2 3 | 4] and [5 6] (the rest of the second example, positions continuing) + padding
        using var batch = new Collator(padTokenId: 99, packedMask: false).Collate(rows);
        Assert.Equal(new long[] { 1, 2, 3, 4, 5, 6, 99, 99 }, batch.InputIds.data<long>().ToArray());
        Assert.Equal(new long[] { -100, 2, 3, -100, 5, 6, -100, -100 }, batch.Labels.data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, 2, 0, 1, 2, 2, 3 }, batch.PositionIds.data<long>().ToArray()); // padding: its column index
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 1, 0, 0 }, batch.AttentionMask.data<long>().ToArray());
        Assert.Null(batch.PackedMask);
        Assert.NotNull(batch.SegmentIds);
        Assert.Equal(3, batch.LabelTokens); // 2, 3 in row 0; 6 in row 1 (label 5 sits at t = 0 and is never predicted)
    }
}
