using Lora.Tokenization;
using WordNetLora.Data;

namespace WordNetLora.Tests;

public class BpeTrainerTests
{
    private static readonly string[] Texts =
    [
        "The opposite of cheap is expensive.",
        "One antonym of cheap is expensive.",
        "The word cheap means relatively low in price.",
        "### Response:expensive",
        "### Response:\ncheap",
    ];

    private static (HfTokenizer Tokenizer, int Merges) Trained(int vocabSize)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"bpe-{Guid.NewGuid():N}");
        var merges = BpeTrainer.Train(Texts, vocabSize);
        BpeTrainer.Write(dir, merges);
        return (HfTokenizer.Load(dir), merges.Count);
    }

    [Fact]
    public void A_word_is_one_token_wherever_it_stands()
    {
        var (tokenizer, _) = Trained(1000);
        var expensive = tokenizer.Encode("expensive", addSpecialTokens: false);
        Assert.Single(expensive);
        Assert.Equal(expensive, tokenizer.Encode(" expensive", addSpecialTokens: false)[1..]);
        Assert.Equal(expensive, tokenizer.Encode("Response:expensive", addSpecialTokens: false)[^1..]);
        Assert.Equal(expensive, tokenizer.Encode("\nexpensive", addSpecialTokens: false)[^1..]);
        Assert.Equal(256, tokenizer.Encode("expensive")[0]); // <s> first, as the post-processor says
        Assert.Equal((256, 257, 258), (tokenizer.BosTokenId!.Value, tokenizer.EosTokenId!.Value, tokenizer.PadTokenId!.Value));
    }

    [Theory]
    [InlineData("The opposite of cheap is expensive.")]
    [InlineData("naïve café — 東京 🙂, unseen words\n\n### Response:")]
    public void Any_text_round_trips(string text)
    {
        var (tokenizer, _) = Trained(1000);
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, addSpecialTokens: false)));
    }

    [Fact]
    public void Merges_stop_at_the_vocabulary_size_or_when_no_pair_repeats()
    {
        var (small, merges) = Trained(256 + 3 + 10);
        Assert.Equal(10, merges);
        Assert.Equal(256 + 3 + 10, small.VocabSize);
        var (_, all) = Trained(100_000);
        Assert.True(all < 100_000 - 259);
        Assert.Equal(BpeTrainer.Train(Texts, 300), BpeTrainer.Train(Texts, 300)); // deterministic
    }
}
