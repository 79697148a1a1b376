using Lora.Generation;
using TorchSharp;

namespace Lora.Runtime.Tests.Generation;

public class LogitsProcessorTests
{
    private static float[] Row(torch.Tensor t) => t.data<float>().ToArray();

    [Fact]
    public void Repetition_penalty_divides_positive_and_multiplies_negative_scores_of_seen_tokens()
    {
        using var scores = torch.tensor(new[] { 1f, -1f, 2f, 0.5f }).reshape(1, 4);
        using var seen = torch.tensor(new long[] { 0, 1, 1 }).reshape(1, 3);
        using var result = LogitsProcessor.RepetitionPenalty(scores, seen, 2.0);
        Assert.Equal(new[] { 0.5f, -2f, 2f, 0.5f }, Row(result));
    }

    [Fact]
    public void Top_k_keeps_the_k_best()
    {
        using var scores = torch.tensor(new[] { 1f, 3f, 2f, 0f }).reshape(1, 4);
        using var result = LogitsProcessor.TopK(scores, 2);
        Assert.Equal(new[] { float.NegativeInfinity, 3f, 2f, float.NegativeInfinity }, Row(result));
    }

    [Fact]
    public void Top_p_keeps_the_smallest_nucleus_reaching_p()
    {
        using var probs = torch.tensor(new[] { 0.5f, 0.3f, 0.15f, 0.05f }).reshape(1, 4);
        using var scores = probs.log();
        using var result = LogitsProcessor.TopP(scores, 0.75);
        var row = Row(result);
        Assert.True(float.IsFinite(row[0]) && float.IsFinite(row[1]));
        Assert.Equal(float.NegativeInfinity, row[2]);
        Assert.Equal(float.NegativeInfinity, row[3]);
    }

    [Fact]
    public void Top_p_always_keeps_the_most_likely_token()
    {
        using var scores = torch.tensor(new[] { 10f, 0f, 0f }).reshape(1, 3);
        using var result = LogitsProcessor.TopP(scores, 0.01);
        Assert.Equal(new[] { 10f, float.NegativeInfinity, float.NegativeInfinity }, Row(result));
    }

    [Theory]
    [InlineData(0, 1.0, 0, 1.0, 1.0, "temperature")]
    [InlineData(-1, 1.0, 0, 1.0, 1.0, "max_new_tokens")]
    [InlineData(5, 1.0, -2, 1.0, 1.0, "top_k")]
    [InlineData(5, 1.0, 0, 1.5, 1.0, "top_p")]
    [InlineData(5, 1.0, 0, 1.0, 0.0, "repetition_penalty")]
    public void Invalid_options_name_the_field(int maxNew, double temperature, int topK, double topP, double penalty, string field)
    {
        var options = new GenerationOptions
        {
            MaxNewTokens = maxNew,
            Temperature = maxNew == 0 ? 0 : temperature,
            TopK = topK,
            TopP = topP,
            RepetitionPenalty = penalty,
        };
        var e = Assert.Throws<LoraException>(options.Validate);
        Assert.StartsWith(field, e.Message, StringComparison.Ordinal);
    }
}
