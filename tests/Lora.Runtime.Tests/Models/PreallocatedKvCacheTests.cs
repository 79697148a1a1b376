using Lora.Generation;
using Lora.Models;
using Lora.Peft;
using Lora.SafeTensors;
using Lora.Tuners.PrefixTuning;
using Lora.Tuners.PromptTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

/// <summary>
/// The preallocated KV cache (issue #15) against the concatenating one it replaced (<see cref="KvCache.Concatenating"/>):
/// the same logits, bit for bit, step after step; the prefill's last-position-only logits; and the generator's
/// device-side path against its per-token path.
/// </summary>
public class PreallocatedKvCacheTests
{
    private static Tensor InputIds(string @case)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        return file.Load("input_ids");
    }

    /// <summary>Two rows of the fixture's ids, row 0 left-padded by three positions (mask 0, id 0).</summary>
    private static (Tensor Ids, Tensor Mask) PaddedBatch(string @case)
    {
        var ids = InputIds(@case);
        var t = ids.shape[1];
        const int pad = 3;
        var rows = ids.shape[0] >= 2 ? ids.narrow(0, 0, 2) : cat([ids, ids.flip(1)], 0);
        var padded = rows.clone();
        padded[0, TensorIndex.Slice(0, pad)] = zeros(pad, ScalarType.Int64);
        var mask = ones(2, t, ScalarType.Int64);
        mask[0, TensorIndex.Slice(0, pad)] = zeros(pad, ScalarType.Int64);
        return (padded, mask);
    }

    /// <summary>Prefill of <paramref name="prefill"/> positions, then one position per step; the logits of each pass.</summary>
    private static List<Tensor> Decode(CausalLM model, KvCache cache, Tensor ids, Tensor mask, int prefill, Action<int, KvCache>? afterStep = null)
    {
        var outputs = new List<Tensor> { model.Forward(ids.narrow(1, 0, prefill), mask.narrow(1, 0, prefill), cache: cache) };
        for (var i = prefill; i < ids.shape[1]; i++)
        {
            afterStep?.Invoke(i, cache);
            outputs.Add(model.Forward(ids.narrow(1, i, 1), mask.narrow(1, 0, i + 1), cache: cache));
        }

        return outputs;
    }

    private static void AssertIdentical(IReadOnlyList<Tensor> expected, IReadOnlyList<Tensor> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].shape, actual[i].shape);
            Assert.True(expected[i].equal(actual[i]).all().item<bool>(), $"{what}: pass {i} differs (max |a - b| = {(expected[i] - actual[i]).abs().max().item<float>():G6})");
        }
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Preallocated_and_growing_caches_give_the_concatenating_cache_logits(string @case)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        var (ids, mask) = PaddedBatch(@case);
        var t = ids.shape[1];
        const int prefill = 5;

        using var reference = KvCache.Concatenating(model.Config.NumLayers);
        var expected = Decode(model, reference, ids, mask, prefill);
        Assert.Equal(t, reference.Length);

        using var exact = model.NewCache(t);                 // never grows
        AssertIdentical(expected, Decode(model, exact, ids, mask, prefill), "capacity T");
        Assert.Equal((t, t), (exact.Length, exact.Capacity));

        using var roomy = model.NewCache(t + 40);            // unused room after the filled prefix
        AssertIdentical(expected, Decode(model, roomy, ids, mask, prefill), "capacity T + 40");

        using var small = model.NewCache(prefill + 1);       // grows past its capacity (doubling) while decoding
        AssertIdentical(expected, Decode(model, small, ids, mask, prefill), "capacity prefill + 1");
        Assert.Equal(t, small.Length);
        Assert.True(small.Capacity >= t);

        using var growing = model.NewCache();                // sized by the prefill, then doubling
        AssertIdentical(expected, Decode(model, growing, ids, mask, prefill), "no capacity");
        Assert.Equal(t, growing.Length);
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("gpt2_c_attn")]
    public void Select_rows_keeps_the_concatenating_cache_logits(string @case)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        var (ids, mask) = PaddedBatch(@case);
        const int prefill = 4;
        const int select = 7;

        List<Tensor> Run(KvCache cache)
        {
            var outputs = new List<Tensor> { model.Forward(ids.narrow(1, 0, prefill), mask.narrow(1, 0, prefill), cache: cache) };
            var (rowIds, rowMask) = (ids, mask);
            for (var i = prefill; i < ids.shape[1]; i++)
            {
                if (i == select)
                {
                    // Keep row 1 only, as a caller does once row 0 finished.
                    using var rows = tensor(new long[] { 1 });
                    cache.SelectRows(rows);
                    (rowIds, rowMask) = (ids.narrow(0, 1, 1), mask.narrow(0, 1, 1));
                }

                outputs.Add(model.Forward(rowIds.narrow(1, i, 1), rowMask.narrow(1, 0, i + 1), cache: cache));
            }

            return outputs;
        }

        using var reference = KvCache.Concatenating(model.Config.NumLayers);
        var expected = Run(reference);
        using var preallocated = model.NewCache(ids.shape[1]);
        AssertIdentical(expected, Run(preallocated), "preallocated");
        Assert.Equal(ids.shape[1], preallocated.Capacity);
        using var growing = model.NewCache(prefill);
        AssertIdentical(expected, Run(growing), "growing");
    }

    [Theory]
    [InlineData("llama_qv", "prefix")]
    [InlineData("llama_qv", "prompt")]
    [InlineData("gpt2_c_attn", "prefix")]
    public void Prompt_learning_models_give_the_concatenating_cache_logits(string @case, string method)
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        PromptLearningConfig config = method == "prefix"
            ? new PrefixTuningConfig { NumVirtualTokens = 4, PrefixProjection = true, EncoderHiddenSize = 16 }
            : new PromptTuningConfig { NumVirtualTokens = 4 };
        PeftInjector.Inject(model, config);
        using var noGrad = no_grad();
        var (ids, mask) = PaddedBatch(@case);
        var t = ids.shape[1];
        const int prefill = 5;

        using var reference = KvCache.Concatenating(model.Config.NumLayers);
        var expected = Decode(model, reference, ids, mask, prefill);
        Assert.Equal((4, 4 + t), (reference.VirtualTokens, reference.Length));

        using var preallocated = model.NewCache(4 + t);      // the generator's capacity: virtual + prompt + new
        AssertIdentical(expected, Decode(model, preallocated, ids, mask, prefill), $"{method}: preallocated");
        Assert.Equal((4, 4 + t, 4 + t), (preallocated.VirtualTokens, preallocated.Length, preallocated.Capacity));

        using var growing = model.NewCache();
        AssertIdentical(expected, Decode(model, growing, ids, mask, prefill), $"{method}: growing");
    }

    [Theory]
    [InlineData("llama_qv", null)]
    [InlineData("gpt2_c_attn", null)]
    [InlineData("llama_qv", "prompt")]
    [InlineData("llama_qv", "prefix")]
    public void Prefill_logits_of_the_last_position_equal_the_last_row_of_the_full_logits(string @case, string? method)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        if (method is not null)
        {
            PeftInjector.Inject(model, method == "prefix"
                ? new PrefixTuningConfig { NumVirtualTokens = 3 }
                : new PromptTuningConfig { NumVirtualTokens = 3 });
        }

        using var noGrad = no_grad();
        var (ids, mask) = PaddedBatch(@case);
        var full = model.Forward(ids, mask);                                   // (B, [n +] T, V)
        var last = model.ForwardLastLogits(ids, mask);                          // (B, 1, V)
        Assert.Equal(new[] { ids.shape[0], 1, full.shape[2] }, last.shape);
        LogitsAssert.Close(last, full.narrow(1, full.shape[1] - 1, 1), rtol: 1e-6, atol: 1e-6, what: "last position");
        var three = model.ForwardLastLogits(ids, mask, logitsToKeep: 3);
        LogitsAssert.Close(three, full.narrow(1, full.shape[1] - 3, 3), rtol: 1e-6, atol: 1e-6, what: "last 3 positions");
        Assert.Equal(full.shape, model.ForwardLastLogits(ids, mask, logitsToKeep: 0).shape); // 0 keeps all

        // With a cache: the same last row, and the cache filled as by the full pass.
        using var cache = model.NewCache(ids.shape[1] + 3);
        var cached = model.ForwardLastLogits(ids, mask, null, cache);
        LogitsAssert.Close(cached, full.narrow(1, full.shape[1] - 1, 1), rtol: 1e-6, atol: 1e-6, what: "last position, cached");
        Assert.Equal(ids.shape[1] + (method is null ? 0 : 3), cache.Length);

        // The keep does not outlive the call.
        Assert.Equal(full.shape, model.Forward(ids, mask).shape);
    }

    /// <summary>The per-token path: any callback makes the generator read every token on the host.</summary>
    private static IReadOnlyList<GeneratedSequence> PerToken(CausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, int pad = 0)
    {
        var streamed = prompts.Select(_ => new List<int>()).ToArray();
        var result = TokenGenerator.Generate(model, prompts, options, pad, onToken: (b, t) => streamed[b].Add(t));
        for (var b = 0; b < prompts.Count; b++)
            Assert.Equal(result[b].Tokens, streamed[b]);
        return result;
    }

    private static void AssertSame(IReadOnlyList<GeneratedSequence> expected, IReadOnlyList<GeneratedSequence> actual)
    {
        Assert.Equal(expected.Select(s => s.Tokens.ToArray()), actual.Select(s => s.Tokens.ToArray()));
        Assert.Equal(expected.Select(s => s.Reason), actual.Select(s => s.Reason));
    }

    [Theory]
    [InlineData("llama_qv", 8)]   // the accelerator's interval: steps run after the last row finished
    [InlineData("gpt2_c_attn", 8)]
    [InlineData("llama_qv", 0)]   // the device's own (every step on the CPU)
    public void Device_side_generation_gives_the_per_token_tokens(string @case, int interval)
    {
        TokenGenerator.FinishedCheckIntervalOverride = interval;
        try
        {
            DeviceSideGeneration(@case);
        }
        finally
        {
            TokenGenerator.FinishedCheckIntervalOverride = 0;
        }
    }

    private static void DeviceSideGeneration(string @case)
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        IReadOnlyList<int>[] prompts = [[5, 17, 42, 8, 99, 3], [7, 7, 1], [250, 4]];

        // Greedy, no stop token: every row runs to the end.
        var greedy = new GenerationOptions { MaxNewTokens = 20 };
        var expected = PerToken(model, prompts, greedy);
        AssertSame(expected, TokenGenerator.Generate(model, prompts, greedy));
        Assert.All(expected, s => Assert.Equal(20, s.Tokens.Count));

        // Stop tokens that end rows at different steps (one row never stops): tokens after each row's stop token are
        // not output, and the pad the device writes for finished rows may itself be a stop token.
        int[] stops = [expected[0].Tokens[2], expected[1].Tokens[11]];
        foreach (var pad in new[] { 0, stops[0] })
        {
            var stopping = new GenerationOptions { MaxNewTokens = 20, StopTokenIds = stops };
            var perToken = PerToken(model, prompts, stopping, pad);
            AssertSame(perToken, TokenGenerator.Generate(model, prompts, stopping, pad));
            Assert.Equal(FinishReason.StopToken, perToken[0].Reason);
        }

        // Every row stops early (between two "all finished?" reads): the extra steps change nothing.
        var early = new GenerationOptions { MaxNewTokens = 30, StopTokenIds = prompts.Select((_, b) => expected[b].Tokens[1 + b]).ToList() };
        var perTokenEarly = PerToken(model, prompts, early);
        AssertSame(perTokenEarly, TokenGenerator.Generate(model, prompts, early));
        Assert.All(perTokenEarly, s => Assert.Equal(FinishReason.StopToken, s.Reason));

        // Seeded sampling with a repetition penalty: the same draws in the same order.
        var sampling = new GenerationOptions { MaxNewTokens = 18, DoSample = true, Temperature = 1.3, TopK = 40, TopP = 0.9, RepetitionPenalty = 1.2, Seed = 11, StopTokenIds = stops };
        AssertSame(PerToken(model, prompts, sampling), TokenGenerator.Generate(model, prompts, sampling));
        var plain = sampling with { StopTokenIds = [] };
        AssertSame(PerToken(model, prompts, plain), TokenGenerator.Generate(model, prompts, plain));

        // Without the cache (a full pass per step) too.
        var uncached = greedy with { UseCache = false, MaxNewTokens = 8, StopTokenIds = stops };
        AssertSame(PerToken(model, prompts, uncached), TokenGenerator.Generate(model, prompts, uncached));
    }
}
