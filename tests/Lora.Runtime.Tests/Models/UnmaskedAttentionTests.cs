using Lora.Kernels;
using Lora.Models;
using Lora.Peft;
using Lora.SafeTensors;
using Lora.Tuners.PrefixTuning;
using Lora.Tuners.PromptTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

/// <summary>
/// Unpadded generation passes no attention mask (issue #15): the prefill is causal and each decode step's single query
/// attends every key, unmasked, on the kernels' fastest path and (Llama family) with grouped-query K/V unrepeated.
/// SDPA's own <c>is_causal</c> aligns its triangle top-left, so a lone query under it would see only the first key:
/// these tests pin that the unmasked passes equal the masked ones.
/// </summary>
public class UnmaskedAttentionTests
{
    [Fact]
    public void A_single_query_without_a_mask_attends_every_key_on_both_attention_paths()
    {
        manual_seed(3);
        using var scope = NewDisposeScope();
        var q = randn(2, 4, 1, 8);
        var k = randn(2, 2, 5, 8);
        var v = randn(2, 2, 5, 8);
        var kr = Attention.RepeatKv(k, 2);
        var vr = Attention.RepeatKv(v, 2);
        var expected = (q.matmul(kr.transpose(-1, -2)) / Math.Sqrt(8)).softmax(-1).matmul(vr); // every key, by hand
        LogitsAssert.Close(Attention.GroupedQuery(q, k, v, null), expected, 1e-5, 1e-6, "grouped-query kernel");
        using (FusedKernels.Composite())
            LogitsAssert.Close(Attention.GroupedQuery(q, k, v, null), expected, 1e-5, 1e-6, "composite (repeated K/V)");
        LogitsAssert.Close(Attention.ScaledDotProduct(q, kr, vr, null), expected, 1e-5, 1e-6, "plain SDPA");
    }

    [Fact]
    public void An_unmasked_pass_of_several_queries_over_more_keys_is_refused()
    {
        using var scope = NewDisposeScope();
        var q = randn(1, 2, 3, 8);
        var k = randn(1, 2, 5, 8);
        var error = Assert.Throws<ArgumentException>(() => Attention.ScaledDotProduct(q, k, k, null));
        Assert.Contains("3 queries and 5 keys", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Only_a_pass_without_padding_and_with_no_past_or_one_query_builds_no_mask()
    {
        Assert.Null(AttentionMask.Build(null, 2, 7, 0, CPU));  // prefill: the kernel's causal path
        Assert.Null(AttentionMask.Build(null, 2, 1, 9, CPU));  // decode step: every key
        using var withPast = AttentionMask.Build(null, 2, 3, 9, CPU);
        Assert.NotNull(withPast);                               // several queries after a past: the explicit triangle
        using var padding = ones(2, 10, ScalarType.Int64);
        using var oneQuery = AttentionMask.Build(padding, 2, 1, 9, CPU);
        Assert.NotNull(oneQuery);                               // a 2-D mask given is always honoured
    }

    [Theory]
    [InlineData("llama_qv", null, false)]
    [InlineData("llama_qv", null, true)]
    [InlineData("qwen2_all_linear", null, false)]
    [InlineData("gpt2_c_attn", null, false)]
    [InlineData("llama_qv", "prefix", false)]
    [InlineData("llama_qv", "prompt", false)]
    public void Cached_decoding_without_a_mask_equals_decoding_with_an_all_ones_mask(string @case, string? method, bool composite)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        if (method == "prefix")
            PeftInjector.Inject(model, new PrefixTuningConfig { NumVirtualTokens = 3 });
        else if (method == "prompt")
            PeftInjector.Inject(model, new PromptTuningConfig { NumVirtualTokens = 3 });
        model.eval();
        using var noGrad = no_grad();
        using var kernels = composite ? FusedKernels.Composite() : null;
        Tensor ids;
        using (var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors")))
            ids = file.Load("input_ids");
        var mask = ones_like(ids);
        const int prefill = 4;
        var t = (int)ids.shape[1];
        var virtualTokens = method is null ? 0 : 3;
        using var masked = model.NewCache(t + virtualTokens);
        using var unmasked = model.NewCache(t + virtualTokens);
        LogitsAssert.Close(model.Forward(ids.narrow(1, 0, prefill), null, cache: unmasked), model.Forward(ids.narrow(1, 0, prefill), mask.narrow(1, 0, prefill), cache: masked), 1e-5, 1e-6, "prefill");
        for (var i = prefill; i < t; i++)
        {
            var expected = model.Forward(ids.narrow(1, i, 1), mask.narrow(1, 0, i + 1), cache: masked);
            LogitsAssert.Close(model.Forward(ids.narrow(1, i, 1), null, cache: unmasked), expected, 1e-5, 1e-6, $"decode step at position {i}");
        }
    }
}
