using Lora.Generation;
using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Generation;

public class TokenGeneratorTests
{
    /// <summary>Greedy decoding by recomputing the whole sequence every step: the reference without a cache.</summary>
    private static List<int> GreedyWithoutCache(CausalLM model, IReadOnlyList<int> prompt, int steps)
    {
        var ids = prompt.ToList();
        using var noGrad = no_grad();
        for (var i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            var input = tensor(ids.Select(t => (long)t).ToArray(), [1, ids.Count]);
            ids.Add((int)model.Forward(input)[0, -1].argmax().item<long>());
        }

        return ids.Skip(prompt.Count).ToList();
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Greedy_with_kv_cache_equals_greedy_without(string @case)
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        int[] prompt = [5, 17, 42, 8, 99, 3];
        var expected = GreedyWithoutCache(model, prompt, 20);
        var result = TokenGenerator.Generate(model, [prompt], new GenerationOptions { MaxNewTokens = 20 });
        Assert.Equal(expected, result[0].Tokens);
        Assert.Equal(FinishReason.Length, result[0].Reason);
    }

    [Fact]
    public void Left_padded_batch_generates_what_each_prompt_generates_alone()
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        int[][] prompts = [[5, 17, 42, 8, 99, 3], [7, 7, 1], [250]];
        var options = new GenerationOptions { MaxNewTokens = 12 };
        var batch = TokenGenerator.Generate(model, prompts, options, padTokenId: 0);
        for (var i = 0; i < prompts.Length; i++)
            Assert.Equal(TokenGenerator.Generate(model, [prompts[i]], options)[0].Tokens, batch[i].Tokens);
    }

    [Fact]
    public void Stop_tokens_streaming_and_seeded_sampling()
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        int[] prompt = [5, 17, 42];
        var greedy = TokenGenerator.Generate(model, [prompt], new GenerationOptions { MaxNewTokens = 10 })[0].Tokens.ToList();

        var stopAt = greedy[3];
        var streamed = new List<int>();
        var stopped = TokenGenerator.Generate(model, [prompt], new GenerationOptions { MaxNewTokens = 10, StopTokenIds = [stopAt] },
            onToken: (_, t) => streamed.Add(t))[0];
        Assert.Equal(FinishReason.StopToken, stopped.Reason);
        Assert.Equal(greedy.Take(greedy.IndexOf(stopAt) + 1), stopped.Tokens);
        Assert.Equal(stopped.Tokens, streamed);

        var sampling = new GenerationOptions { MaxNewTokens = 15, DoSample = true, Temperature = 1.5, TopK = 50, TopP = 0.95, Seed = 7 };
        var a = TokenGenerator.Generate(model, [prompt], sampling)[0].Tokens;
        var b = TokenGenerator.Generate(model, [prompt], sampling)[0].Tokens;
        var c = TokenGenerator.Generate(model, [prompt], sampling with { Seed = 8 })[0].Tokens;
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);

        var condition = TokenGenerator.Generate(model, [prompt], new GenerationOptions { MaxNewTokens = 10 },
            stop: (_, generated) => generated.Count == 4)[0];
        Assert.Equal(FinishReason.StopCondition, condition.Reason);
        Assert.Equal(greedy.Take(4), condition.Tokens);
    }

    [Fact]
    public void Generation_does_not_leak_tensors()
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        TokenGenerator.Generate(model, [[1, 2, 3]], new GenerationOptions { MaxNewTokens = 3 });
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        TokenGenerator.Generate(model, [[1, 2, 3]], new GenerationOptions { MaxNewTokens = 30 });
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
