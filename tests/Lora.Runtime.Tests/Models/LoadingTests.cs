using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

/// <summary>Strict loading: every parameter present with its shape, every checkpoint tensor used; other dtypes.</summary>
public class LoadingTests
{
    /// <summary>A copy of a fixture's base checkpoint with <paramref name="edit"/> applied to its tensors.</summary>
    private static string ModifiedCopy(string @case, Action<Dictionary<string, Tensor>> edit)
    {
        var source = Fixtures.Peft(@case, "base");
        var dir = Fixtures.TempDirectory();
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(dir, "config.json"));
        using var scope = NewDisposeScope();
        using var checkpoint = SafeTensorsCheckpoint.Open(source);
        var tensors = checkpoint.Keys.ToDictionary(k => k, k => checkpoint.Load(k), StringComparer.Ordinal);
        edit(tensors);
        SafeTensorsWriter.Write(Path.Combine(dir, SafeTensorsCheckpoint.SingleFileName), tensors);
        return dir;
    }

    [Fact]
    public void Missing_key_is_named_with_the_directory()
    {
        var dir = ModifiedCopy("llama_qv", t => t.Remove("model.layers.1.mlp.up_proj.weight"));
        var e = Assert.Throws<LoraException>(() => CausalLM.FromPretrained(dir));
        Assert.Contains(dir, e.Message, StringComparison.Ordinal);
        Assert.Contains("1 missing key(s): model.layers.1.mlp.up_proj.weight", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("unexpected", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unexpected_key_is_named()
    {
        var dir = ModifiedCopy("llama_qv", t => t["model.layers.0.self_attn.x_proj.weight"] = zeros(4, 4));
        var e = Assert.Throws<LoraException>(() => CausalLM.FromPretrained(dir));
        Assert.Contains("1 unexpected key(s): model.layers.0.self_attn.x_proj.weight", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Long_key_lists_are_cut_after_ten()
    {
        var dir = ModifiedCopy("llama_qv", t =>
        {
            foreach (var key in t.Keys.Where(k => k.StartsWith("model.layers.", StringComparison.Ordinal)).ToList())
                t.Remove(key);
        });
        var e = Assert.Throws<LoraException>(() => CausalLM.FromPretrained(dir));
        Assert.Contains("18 missing key(s)", e.Message, StringComparison.Ordinal);
        Assert.Contains("(and 8 more)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_shape_names_the_key_and_both_shapes()
    {
        var dir = ModifiedCopy("llama_qv", t => t["model.layers.0.self_attn.q_proj.weight"] = zeros(64, 32));
        var e = Assert.Throws<LoraException>(() => CausalLM.FromPretrained(dir));
        Assert.Contains("'model.layers.0.self_attn.q_proj.weight'", e.Message, StringComparison.Ordinal);
        Assert.Contains("(64, 32) in the checkpoint", e.Message, StringComparison.Ordinal);
        Assert.Contains("expects (64, 64)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Known_buffers_and_a_saved_tied_head_are_accepted()
    {
        var dir = ModifiedCopy("gpt2_c_attn", t =>
        {
            t["transformer.h.0.attn.bias"] = ones(1, 1, 128, 128, ScalarType.Bool).tril();
            t["transformer.h.0.attn.masked_bias"] = tensor(-1e4f);
            t["lm_head.weight"] = t["transformer.wte.weight"];
        });
        using var model = CausalLM.FromPretrained(dir);
        Assert.IsType<Gpt2LMHeadModel>(model);
    }

    [Fact]
    public void Base_model_checkpoints_without_the_prefix_load()
    {
        // The original gpt2 checkpoints store GPT2Model keys: "h.0.attn.c_attn.weight", "wte.weight", ...
        var dir = ModifiedCopy("gpt2_c_attn", t =>
        {
            foreach (var key in t.Keys.ToList())
            {
                t[key["transformer.".Length..]] = t[key];
                t.Remove(key);
            }
        });
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var model = CausalLM.FromPretrained(dir);
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("gpt2_c_attn"), "expected.safetensors"));
        LogitsAssert.Close(model.Forward(expected.Load("input_ids")), expected.Load("base_logits"));
    }

    [Theory]
    [InlineData("llama_qv", ScalarType.BFloat16)]
    [InlineData("qwen2_all_linear", ScalarType.BFloat16)]
    [InlineData("gpt2_c_attn", ScalarType.BFloat16)]
    [InlineData("llama_qv", ScalarType.Float16)]
    public void Half_precision_loads_and_stays_close_to_fp32(string @case, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"), dtype);
        Assert.All(model.parameters(), p => Assert.Equal(dtype, p.dtype));
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        var logits = model.Forward(expected.Load("input_ids"));
        Assert.Equal(dtype, logits.dtype);
        // bf16 keeps 8 bits of mantissa (~4e-3 relative per rounding); a few roundings per layer stay well below 5%.
        LogitsAssert.Close(logits, expected.Load("base_logits"), rtol: 5e-2, atol: 1e-3, what: $"{@case} {dtype}");
    }

    [Fact]
    public void Unsupported_dtype_is_refused()
    {
        var e = Assert.Throws<LoraException>(() => CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"), ScalarType.Int8));
        Assert.Contains("Int8", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Random_init_gives_a_working_model()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var config = (LlamaConfig)ModelConfigLoader.Load(Fixtures.Peft("llama_qv", "base"));
        using var model = new LlamaForCausalLM(config);
        model.InitializeWeights(new Generator(7));
        var logits = model.Forward(arange(8, ScalarType.Int64).unsqueeze(0));
        Assert.Equal(new long[] { 1, 8, 320 }, logits.shape);
        Assert.False(logits.isnan().any().item<bool>());
        Assert.Equal(1f, model.Model.Norm.Weight[0].item<float>());
    }
}
