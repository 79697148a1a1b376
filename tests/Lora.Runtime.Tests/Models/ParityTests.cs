using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

/// <summary>Base-model logits equal transformers' on every fixture checkpoint (fp32, CPU).</summary>
public class ParityTests
{
    public static TheoryData<string> Cases =>
    [
        "llama_qv", "qwen2_all_linear", "gpt2_c_attn", "llama_dora_qv", "llama_rslora_all",
        "llama_regex_layer0", "llama_prefix", "llama_prompt", "llama_ia3",
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Base_logits_match_transformers(string @case)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        var ids = expected.Load("input_ids");
        var logits = model.Forward(ids);
        Assert.Equal(ScalarType.Float32, logits.dtype);
        LogitsAssert.Close(logits, expected.Load("base_logits"), what: @case);
    }

    [Theory]
    [InlineData("llama_qv", typeof(LlamaForCausalLM))]
    [InlineData("qwen2_all_linear", typeof(Qwen2ForCausalLM))]
    [InlineData("gpt2_c_attn", typeof(Gpt2LMHeadModel))]
    public void Architecture_comes_from_model_type(string @case, Type type)
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        Assert.IsType(type, model);
        Assert.False(model.training);
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Parameter_paths_are_the_checkpoint_keys(string @case)
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        using var checkpoint = SafeTensorsCheckpoint.Open(Fixtures.Peft(@case, "base"));
        var names = model.named_parameters().Select(p => p.name).Order(StringComparer.Ordinal);
        Assert.Equal(checkpoint.Keys, names);
    }

    [Fact]
    public void Tied_lm_head_shares_the_embedding_matrix()
    {
        using var model = Qwen2ForCausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"));
        Assert.Same(model.Model.EmbedTokens.Weight, model.LmHead.Weight);
        using var gpt2 = Gpt2LMHeadModel.FromPretrained(Fixtures.Peft("gpt2_c_attn", "base"));
        Assert.Same(gpt2.Transformer.Wte.Weight, gpt2.LmHead.Weight);
        Assert.True(gpt2.Transformer.H[0].Attn.CAttn.FanInFanOut);
        Assert.Equal(64, gpt2.Transformer.H[0].Attn.CAttn.InFeatures);
        Assert.Equal(192, gpt2.Transformer.H[0].Attn.CAttn.OutFeatures);
        Assert.Equal(new long[] { 192, 64 }, gpt2.Transformer.H[0].Attn.CAttn.WeightOutIn().shape);
    }

    [Fact]
    public void Per_architecture_loader_refuses_another_architecture()
    {
        var e = Assert.Throws<LoraException>(() => LlamaForCausalLM.FromPretrained(Fixtures.Peft("gpt2_c_attn", "base")));
        Assert.Contains("gpt2", e.Message, StringComparison.Ordinal);
        Assert.Contains("LlamaForCausalLM", e.Message, StringComparison.Ordinal);
    }
}
