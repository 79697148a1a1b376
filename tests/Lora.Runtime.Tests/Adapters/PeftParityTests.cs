using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Models;
using Lora.Runtime.Tests.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Adapters;

/// <summary>PEFT adapters from the reference stack give PEFT's logits here: loaded, merged, and trained.</summary>
public class PeftParityTests
{
    public static TheoryData<string, string> LoraCases => new()
    {
        { "llama_qv", "lora_logits" },
        { "qwen2_all_linear", "lora_logits" },
        { "gpt2_c_attn", "lora_logits" },
        { "llama_rslora_all", "adapter_logits" },
        { "llama_dora_qv", "adapter_logits" },
        { "llama_regex_layer0", "adapter_logits" },
    };

    [Theory]
    [MemberData(nameof(LoraCases))]
    public void Adapter_logits_match_peft(string @case, string key)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft(@case, "adapter"));
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        using var noGrad = no_grad();
        LogitsAssert.Close(model.Forward(expected.Load("input_ids")), expected.Load(key), what: @case);
    }

    [Theory]
    [MemberData(nameof(LoraCases))]
    public void Merged_logits_match_peft_merge_and_unload(string @case, string key)
    {
        // The core cases (lora_logits) merged their adapter after the 5 training steps (generate/peft_core.py).
        var adapter = key == "lora_logits" ? "adapter_trained" : "adapter";
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft(@case, adapter));
        model.MergeAndUnload();
        Assert.Empty(model.AdaptedLayers());
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        using var noGrad = no_grad();
        LogitsAssert.Close(model.Forward(expected.Load("input_ids")), expected.Load("merged_logits"), what: @case);
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Trained_adapter_logits_match_peft(string @case)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft(@case, "adapter_trained"));
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        using var noGrad = no_grad();
        LogitsAssert.Close(model.Forward(expected.Load("input_ids")), expected.Load("trained_logits"), what: @case);
    }

    [Fact]
    public void Disabled_adapters_give_base_logits_and_merge_unmerge_restores_weights()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_dora_qv", "base"));
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft("llama_dora_qv", "adapter"));
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_dora_qv"), "expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        using (model.DisableAdapters())
            LogitsAssert.Close(model.Forward(ids), expected.Load("base_logits"), what: "disabled");
        LogitsAssert.Close(model.Forward(ids), expected.Load("adapter_logits"), what: "re-enabled");

        model.MergeAdapters();
        LogitsAssert.Close(model.Forward(ids), expected.Load("merged_logits"), what: "merged");
        model.UnmergeAdapters();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (before.TryGetValue(name, out var original))
                Assert.True(parameter.allclose(original, rtol: 1e-5, atol: 1e-6), name);
        }

        LogitsAssert.Close(model.Forward(ids), expected.Load("adapter_logits"), what: "unmerged");
    }

    [Fact]
    public void Saved_adapter_has_peft_keys_shapes_dtypes_and_config_and_reloads_identically()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var config = PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft("llama_qv", "adapter"));
        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, config);

        using (var ours = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName)))
        using (var peft = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_qv", "adapter"), PeftAdapter.WeightsFileName)))
        {
            Assert.Equal(peft.Tensors.Keys.Order(StringComparer.Ordinal), ours.Tensors.Keys.Order(StringComparer.Ordinal));
            foreach (var (name, entry) in peft.Tensors)
            {
                Assert.Equal(entry.Shape, ours.Tensors[name].Shape);
                Assert.Equal(SafeTensorsDType.F32, ours.Tensors[name].DType);
                Assert.True(ours.Load(name).equal(peft.Load(name)).all().item<bool>(), name);
            }

            Assert.Equal("pt", ours.Metadata["format"]);
        }

        var reread = PeftConfigFile.Read<LoraConfig>(dir);
        Assert.Equal(config.R, reread.R);
        Assert.Equal(config.LoraAlpha, reread.LoraAlpha);
        Assert.Equal(config.TargetModules!.Names!.Order(), reread.TargetModules!.Names!.Order());

        using var fresh = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftAdapter.Load<LoraConfig>(fresh, dir);
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_qv"), "expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        Assert.True(fresh.Forward(ids).equal(model.Forward(ids)).all().item<bool>());
    }

    [Fact]
    public void Trainable_parameter_summary_has_peft_format()
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft("llama_qv", "adapter"));
        model.MarkOnlyAdaptersTrainable();
        // 2 layers × (q: 8·64 + 64·8, v: 8·64 + 32·8) = 2 × (1024 + 768) = 3,584 trainable; all = the base checkpoint's
        // elements (counted from its file, not from the model) + the adapter's.
        const long trainable = 3584;
        long baseElements;
        using (var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_qv", "base"), "model.safetensors")))
            baseElements = file.Tensors.Values.Sum(t => t.Shape.Aggregate(1L, (a, d) => a * d));
        var all = baseElements + trainable;
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        Assert.Equal($"trainable params: 3,584 || all params: {all.ToString("N0", inv)} || trainable%: {(100.0 * trainable / all).ToString("F4", inv)}", model.TrainableParametersSummary());
        Assert.Equal((trainable, all), model.ParameterCounts());
    }
}
