using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Models;
using Lora.Runtime.Tests.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Adapters;

/// <summary>Embedding LoRA, several adapters per layer, weighted combinations, safe merge, and failing loudly.</summary>
public class AdapterOperationsTests
{
    private static readonly long[] Ids = [5, 17, 42, 8, 99, 3, 250, 7];

    private static Tensor Logits(CausalLM model)
    {
        using var noGrad = no_grad();
        return model.Forward(tensor(Ids, [1, Ids.Length]));
    }

    private static CausalLM Base() => CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));

    [Fact]
    public void Embedding_lora_has_peft_keys_changes_output_and_merges_exactly()
    {
        using var scope = NewDisposeScope();
        using var model = Base();
        var baseLogits = Logits(model);
        var config = new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(["embed_tokens", "q_proj"]), InitLoraWeights = "false" };
        manual_seed(3);
        var paths = PeftInjector.Inject(model, config);
        Assert.Contains("model.embed_tokens", paths);

        var state = PeftAdapter.StateDict(model);
        Assert.Equal(new long[] { 4, 320 }, state["base_model.model.model.embed_tokens.lora_embedding_A"].shape);
        Assert.Equal(new long[] { 64, 4 }, state["base_model.model.model.embed_tokens.lora_embedding_B"].shape);

        var adapted = Logits(model);
        Assert.True((adapted - baseLogits).abs().max().item<float>() > 1e-3);
        model.MergeAdapters();
        LogitsAssert.Close(Logits(model), adapted, what: "merged embedding");
        model.UnmergeAdapters();

        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, config);
        using var fresh = Base();
        PeftAdapter.Load<LoraConfig>(fresh, dir);
        LogitsAssert.Close(Logits(fresh), adapted, what: "reloaded embedding adapter");
    }

    [Fact]
    public void Default_embedding_init_is_a_no_op()
    {
        using var scope = NewDisposeScope();
        using var model = Base();
        var before = Logits(model);
        PeftInjector.Inject(model, new LoraConfig { TargetModules = TargetModules.FromNames(["embed_tokens"]) });
        LogitsAssert.Close(Logits(model), before, rtol: 0, atol: 1e-6, what: "A = 0");
    }

    [Fact]
    public void Two_adapters_switch_combine_and_delete()
    {
        using var scope = NewDisposeScope();
        using var model = Base();
        PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft("llama_qv", "adapter"));
        PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft("llama_qv", "adapter_trained"), "trained");
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_qv"), "expected.safetensors"));
        var ids = expected.Load("input_ids");
        using var noGrad = no_grad();

        LogitsAssert.Close(model.Forward(ids), expected.Load("lora_logits"), what: "default active");
        model.SetActiveAdapters("trained");
        LogitsAssert.Close(model.Forward(ids), expected.Load("trained_logits"), what: "trained active");

        // Both active = the sum of both updates = a cat combination with weights 1, 1.
        model.SetActiveAdapters("default", "trained");
        var both = model.Forward(ids);
        model.AddWeightedAdapter("sum", [("default", 1.0), ("trained", 1.0)], "cat");
        model.SetActiveAdapters("sum");
        LogitsAssert.Close(model.Forward(ids), both, what: "cat combination");

        // A weight of 1 on one adapter and 0 on the other is that adapter alone.
        model.AddWeightedAdapter("only_trained", [("default", 0.0), ("trained", 1.0)], "cat");
        model.SetActiveAdapters("only_trained");
        LogitsAssert.Close(model.Forward(ids), expected.Load("trained_logits"), what: "weights 0, 1");

        foreach (var (_, layer) in model.AdaptedLayers().ToList())
            layer.DeleteAdapter("sum");
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains(".adapters.sum.", StringComparison.Ordinal));
    }

    [Fact]
    public void Saving_with_a_config_that_does_not_describe_the_adapter_is_refused()
    {
        using var model = Base();
        var config = PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft("llama_qv", "adapter"));
        var e = Assert.Throws<LoraException>(() => PeftAdapter.Save(model, Fixtures.TempDirectory(), config with { R = 16 }));
        Assert.Contains("r=16", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Safe_merge_refuses_nan_and_leaves_the_model_unchanged()
    {
        using var scope = NewDisposeScope();
        using var model = Base();
        PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft("llama_qv", "adapter"));
        var (_, layer) = model.AdaptedLayers().Last();
        using (no_grad())
            ((LoraAdapter)((Modules.LinearLayer)layer).Adapter("default")).LoraB.weight![0, 0] = float.NaN;
        var e = Assert.Throws<LoraException>(() => model.MergeAdapters());
        Assert.Contains("NaN or Inf", e.Message, StringComparison.Ordinal);
        foreach (var (_, l) in model.AdaptedLayers())
            Assert.Empty(l.MergedAdapters);
    }

    public static TheoryData<string, Action<string>, string> Corruptions => new()
    {
        {
            "renamed key",
            dir => Rewrite(dir, t => t.ToDictionary(kv => kv.Key.Replace("layers.1.self_attn.q_proj.lora_A", "layers.1.self_attn.q_proj.lora_X", StringComparison.Ordinal), kv => kv.Value)),
            "1 missing key(s): base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight; 1 unexpected key(s): base_model.model.model.layers.1.self_attn.q_proj.lora_X.weight"
        },
        {
            "wrong shape",
            dir => Rewrite(dir, t => t.ToDictionary(kv => kv.Key, kv => kv.Key.EndsWith("layers.0.self_attn.v_proj.lora_B.weight", StringComparison.Ordinal) ? zeros(16, 8) : kv.Value)),
            "'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight' has shape (16, 8) but this model needs (32, 8)"
        },
        { "missing weights", dir => File.Delete(Path.Combine(dir, PeftAdapter.WeightsFileName)), "adapter_model.safetensors: file not found" },
        { "bad json", dir => File.WriteAllText(Path.Combine(dir, PeftConfigFile.FileName), "{\n  \"peft_type\": \"LORA\",\n  \"r\": 8,,\n}"), "adapter_config.json:3: not valid JSON" },
        { "rank mismatch", dir => File.WriteAllText(Path.Combine(dir, PeftConfigFile.FileName), File.ReadAllText(Path.Combine(dir, PeftConfigFile.FileName)).Replace("\"r\": 8", "\"r\": 4", StringComparison.Ordinal)), "has shape (8, 64) but this model needs (4, 64)" },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void Corrupted_adapter_fails_loudly_and_leaves_no_adapter(string name, Action<string> corrupt, string expected)
    {
        var dir = Path.Combine(Fixtures.TempDirectory(), name.Replace(' ', '_'));
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Fixtures.Peft("llama_qv", "adapter")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        corrupt(dir);

        using var model = Base();
        var e = Assert.Throws<LoraException>(() => PeftAdapter.Load<LoraConfig>(model, dir));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Empty(model.AdaptedLayers());
    }

    [Fact]
    public void Keys_without_the_base_model_prefix_are_accepted()
    {
        var dir = Fixtures.TempDirectory();
        File.Copy(Path.Combine(Fixtures.Peft("llama_qv", "adapter"), PeftConfigFile.FileName), Path.Combine(dir, PeftConfigFile.FileName));
        using (var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_qv", "adapter"), PeftAdapter.WeightsFileName)))
            SafeTensorsWriter.Write(Path.Combine(dir, PeftAdapter.WeightsFileName), file.Tensors.Keys.ToDictionary(k => k[AdapterKeys.PeftPrefix.Length..], k => file.Load(k)));
        using var model = Base();
        PeftAdapter.Load<LoraConfig>(model, dir);
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_qv"), "expected.safetensors"));
        using var noGrad = no_grad();
        LogitsAssert.Close(model.Forward(expected.Load("input_ids")), expected.Load("lora_logits"), what: "unprefixed keys");
    }

    private static void Rewrite(string dir, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> change)
    {
        var path = Path.Combine(dir, PeftAdapter.WeightsFileName);
        Dictionary<string, Tensor> tensors;
        using (var file = SafeTensorsFile.Open(path))
            tensors = file.Tensors.Keys.ToDictionary(k => k, k => file.Load(k));
        SafeTensorsWriter.Write(path, change(tensors));
    }

    [Fact]
    public void An_injection_that_fails_part_way_leaves_no_adapter_behind()
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var before = model.named_parameters().Select(p => p.name).ToList();
        // q_proj of every layer is attached first; the rank 0 of layer 1's v_proj then fails.
        var config = new LoraConfig
        {
            R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]),
            RankPattern = new Dictionary<string, int> { ["model.layers.1.self_attn.v_proj"] = 0 },
        };
        var error = Assert.Throws<LoraException>(() => PeftInjector.Inject(model, config));
        Assert.Contains("rank", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, model.named_parameters().Select(p => p.name).ToList());
        Assert.Empty(model.AdaptedLayers());
        PeftInjector.Inject(model, config with { RankPattern = new Dictionary<string, int>() }); // the name is free again
    }

    [Fact]
    public void Setting_the_active_adapter_turns_the_others_off_on_every_layer_as_peft_set_adapter()
    {
        using var scope = NewDisposeScope();
        using var model = Base();
        using var noGrad = no_grad();
        var ids = randint(0, 256, [1, 6], dtype: ScalarType.Int64);
        var baseLogits = model.Forward(ids);
        manual_seed(2);
        PeftInjector.Inject(model, new LoraConfig { R = 4, LoraAlpha = 8, InitLoraWeights = "false", TargetModules = TargetModules.FromNames(["q_proj"]) }, "a");
        var onlyA = model.Forward(ids);
        PeftInjector.Inject(model, new LoraConfig { R = 4, LoraAlpha = 8, InitLoraWeights = "false", TargetModules = TargetModules.FromNames(["v_proj"]) }, "b");
        model.SetActiveAdapters("a");
        LogitsAssert.Close(model.Forward(ids), onlyA, what: "a alone");
        // "b" alone: q_proj holds only "a", which must stop applying there (PEFT: a layer skips active names it lacks).
        model.SetActiveAdapters("b");
        Assert.Empty(model.AdaptedLayers().Single(l => l.Path.EndsWith("0.self_attn.q_proj", StringComparison.Ordinal)).Layer.ActiveAdapters);
        var onlyB = model.Forward(ids);
        model.SetActiveAdapters("a");
        Assert.Equal(["a"], model.AdaptedLayers().Single(l => l.Path.EndsWith("0.self_attn.q_proj", StringComparison.Ordinal)).Layer.ActiveAdapters);
        using (model.DisableAdapters())
            LogitsAssert.Close(model.Forward(ids), baseLogits, what: "disabled");
        Assert.False(onlyB.allclose(onlyA, 1e-4, 1e-5));
        model.SetActiveAdapters("b");
        LogitsAssert.Close(model.Forward(ids), onlyB, what: "b alone again");
        PeftAdapter.Remove(model, "a");
        LogitsAssert.Close(model.Forward(ids), onlyB, what: "b without a at all"); // "a" added nothing while "b" was active
        var error = Assert.Throws<LoraException>(() => model.SetActiveAdapters("c"));
        Assert.Contains("no layer has the adapter(s) c", error.Message, StringComparison.Ordinal);
    }
}
