using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Models;
using Lora.Runtime.Tests.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generators.Tests;

// Real models compiled by the real generator (this project references it as an analyzer).

[Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj")]
public partial class LlamaQvLora : LlamaForCausalLM
{
}

[Lora(R = 2, Alpha = 32, Targets = @".*layers\.0\.self_attn\.(q|k)_proj")]
public partial class LlamaLayer0Lora : LlamaForCausalLM
{
}

[Lora(R = 8, Alpha = 16, Targets = "c_attn")]
public partial class Gpt2CAttnLora : Gpt2LMHeadModel
{
}

[Lora(R = 4, Alpha = 16, Targets = "q_proj|v_proj")]
public partial class LlamaWrongRankLora : LlamaForCausalLM
{
}

[Lora(R = 8, Alpha = 16, Targets = "all-linear")]
public partial class Qwen2AllLinearLora : Qwen2ForCausalLM
{
}

[Lora(R = 8, Alpha = 16, Targets = "all-linear")]
public partial class Gpt2AllLinearLora : Gpt2LMHeadModel
{
}

[Lora(R = 4, Alpha = 8, Targets = "q_proj")]
[Lora(R = 4, Alpha = 8, Targets = "v_proj", AdapterName = "second")]
public partial class LlamaTwoPlanLora : LlamaForCausalLM
{
}

/// <summary>
/// The generated (typed, build-time-resolved) path and the dynamic (run-time-resolved, PEFT-config) path are the same
/// thing: same adapter keys and shapes, same initial values under the same seed, and after loading the PEFT fixture
/// the same logits, equal to PEFT's own within 1e-4 relative.
/// </summary>
[Collection(TorchCollection.Name)]
public class EquivalenceTests
{
    private static string Peft(string @case, string part = "") => Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", @case, part);

    [Fact]
    public void All_linear_selects_what_the_dynamic_path_selects_every_linear_layer_but_the_output_head()
    {
        using var scope = NewDisposeScope();
        using (var generated = Qwen2AllLinearLora.FromPretrained(Peft("qwen2_all_linear", "base")))
        using (var dynamic = CausalLM.FromPretrained(Peft("qwen2_all_linear", "base")))
        {
            var paths = PeftInjector.Inject(dynamic, Qwen2AllLinearLora.Plan);
            Assert.Equal(paths.Order(StringComparer.Ordinal), generated.AdaptedLayers().Select(l => l.Path).Order(StringComparer.Ordinal));
            Assert.Equal(7 * generated.Config.NumLayers, paths.Count);
            Assert.DoesNotContain("lm_head", paths);
        }

        using var gpt2 = Gpt2AllLinearLora.FromPretrained(Peft("gpt2_c_attn", "base"));
        Assert.Equal(4 * gpt2.Config.NumLayers, gpt2.AdaptedLayers().Count()); // c_attn, attn.c_proj, c_fc, mlp.c_proj
    }

    [Fact]
    public void Generated_injection_creates_the_adapters_of_the_dynamic_path()
    {
        using var scope = NewDisposeScope();
        var config = (LlamaConfig)ModelConfigLoader.Load(Peft("llama_qv", "base"));
        using var generated = new LlamaQvLora(config);
        using var dynamic = new LlamaForCausalLM(config);
        generated.LoadWeights(Peft("llama_qv", "base"));
        dynamic.LoadWeights(Peft("llama_qv", "base"));

        torch.manual_seed(1234);
        var typedPaths = generated.InjectAdapters();
        torch.manual_seed(1234);
        var dynamicPaths = PeftInjector.Inject(dynamic, LlamaQvLora.Plan);
        Assert.Equal(dynamicPaths, typedPaths);
        Assert.Equal(["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"], typedPaths);

        var ours = generated.AdapterParameters().ToDictionary(p => p.ModelName, p => p.Parameter);
        var theirs = dynamic.AdapterParameters().ToDictionary(p => p.ModelName, p => p.Parameter);
        Assert.Equal(theirs.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, parameter) in ours)
            Assert.True(parameter.equal(theirs[name]).all().item<bool>(), $"{name}: same seed, same init");

        // Both leave the base frozen (PEFT's get_peft_model): the same parameters train on both paths.
        Assert.Equal(
            dynamic.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name),
            generated.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name));
        Assert.All(generated.named_parameters().Where(p => !p.name.Contains("lora_")), p => Assert.False(p.parameter.requires_grad, p.name));

        // The typed parameter list and the state-dict map cover exactly those parameters, keyed like the PEFT file.
        Assert.Equal(ours.Keys.Order(StringComparer.Ordinal), generated.AdapterStateDictMap().Select(p => p.ParameterName).Order(StringComparer.Ordinal));
        using var file = SafeTensorsFile.Open(Path.Combine(Peft("llama_qv", "adapter"), PeftAdapter.WeightsFileName));
        Assert.Equal(file.Tensors.Keys.Select(AdapterKeys.WithPeftPrefix).Order(StringComparer.Ordinal), generated.AdapterStateDictMap().Select(m => m.PeftKey).Order(StringComparer.Ordinal));
        Assert.Equal(PeftAdapter.StateDict(dynamic).Keys.Order(StringComparer.Ordinal), generated.AdapterStateDictMap().Select(m => m.PeftKey).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("llama_qv", "lora_logits")]
    [InlineData("llama_regex_layer0", "adapter_logits")]
    [InlineData("gpt2_c_attn", "lora_logits")]
    public void LoadAdapter_gives_the_dynamic_path_logits_and_peft_logits(string @case, string key)
    {
        using var scope = NewDisposeScope();
        using CausalLM generated = @case switch
        {
            "llama_qv" => LlamaQvLora.FromPretrained(Peft(@case, "base")),
            "llama_regex_layer0" => LlamaLayer0Lora.FromPretrained(Peft(@case, "base")),
            _ => Gpt2CAttnLora.FromPretrained(Peft(@case, "base")),
        };
        switch (generated)
        {
            case LlamaQvLora m: m.LoadAdapter(Peft(@case, "adapter")); break;
            case LlamaLayer0Lora m: m.LoadAdapter(Peft(@case, "adapter")); break;
            case Gpt2CAttnLora m: m.LoadAdapter(Peft(@case, "adapter")); break;
        }

        using var dynamic = CausalLM.FromPretrained(Peft(@case, "base"));
        PeftAdapter.Load<LoraConfig>(dynamic, Peft(@case, "adapter"));
        using var expected = SafeTensorsFile.Open(Path.Combine(Peft(@case), "expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        var ours = generated.Forward(ids);
        LogitsAssert.Close(ours, dynamic.Forward(ids), what: @case + " vs dynamic");
        LogitsAssert.Close(ours, expected.Load(key), what: @case + " vs PEFT");
    }

    [Fact]
    public void Full_path_regex_resolves_layer_0_only_and_saves_full_paths()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaLayer0Lora.FromPretrained(Peft("llama_regex_layer0", "base"));
        Assert.Equal(["model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.q_proj"], model.AdapterTargets().Select(t => t.Path));
        Assert.Equal(["model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.q_proj"], ((TunerConfig)model.AdapterConfig()).TargetModules!.Names);
        // The static plan keeps the regex (leaf-or-path form), which the dynamic path resolves to the same layers.
        Assert.Equal(model.AdapterTargets().Select(t => t.Path), PeftInjector.ResolveTargets(CausalLM.FromPretrained(Peft("llama_regex_layer0", "base")), LlamaLayer0Lora.Plan).Select(t => t.Path));
    }

    [Fact]
    public void SaveAdapter_writes_a_peft_adapter_the_dynamic_path_reloads_identically()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaQvLora.FromPretrained(Peft("llama_qv", "base"));
        model.LoadAdapter(Peft("llama_qv", "adapter"));
        var dir = Path.Combine(Path.GetTempPath(), "lora-generator-tests", Guid.NewGuid().ToString("N"));
        model.SaveAdapter(dir);
        var saved = PeftConfigFile.Read<LoraConfig>(dir);
        Assert.Equal(["q_proj", "v_proj"], saved.TargetModules!.Names);
        Assert.Equal(8, saved.R);
        Assert.Equal(16, saved.LoraAlpha);

        using var fresh = CausalLM.FromPretrained(Peft("llama_qv", "base"));
        PeftAdapter.Load<LoraConfig>(fresh, dir);
        using var expected = SafeTensorsFile.Open(Path.Combine(Peft("llama_qv"), "expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        Assert.True(fresh.Forward(ids).equal(model.Forward(ids)).all().item<bool>());
    }

    [Fact]
    public void LoadAdapter_fails_loudly_when_the_file_is_for_another_plan()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaWrongRankLora.FromPretrained(Peft("llama_qv", "base"));
        var error = Assert.Throws<LoraException>(() => model.LoadAdapter(Peft("llama_qv", "adapter")));
        Assert.Contains("r = 8 (plan: 4)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Merge_unmerge_and_summary_work_on_the_typed_model()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaQvLora.FromPretrained(Peft("llama_qv", "base"));
        model.LoadAdapter(Peft("llama_qv", "adapter"));
        var trainable = model.MarkAdaptersTrainable();
        Assert.Equal(model.AdapterStateDictMap().Select(p => p.ParameterName).Order(StringComparer.Ordinal), trainable.Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.StartsWith("trainable params: 3,584 || all params: ", model.TrainableParametersSummary(), StringComparison.Ordinal);

        using var expected = SafeTensorsFile.Open(Path.Combine(Peft("llama_qv"), "expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        var before = model.Forward(ids);
        model.MergeAdapters();
        LogitsAssert.Close(model.Forward(ids), before, what: "merged");
        model.UnmergeAdapters();
        model.MergeAndUnload();
        Assert.Empty(model.AdaptedLayers());
        LogitsAssert.Close(model.Forward(ids), before, what: "merge and unload");
    }

    [Fact]
    public void Generated_injection_that_fails_part_way_removes_what_it_added()
    {
        using var scope = NewDisposeScope();
        using var model = new LlamaTwoPlanLora((LlamaConfig)ModelConfigLoader.Load(Peft("llama_qv", "base")));
        // "second" already sits on layer 1's v_proj: the second plan attaches layer 0's v_proj, then fails on layer 1's,
        // after the first plan has put "default" on every q_proj.
        var taken = model.Model.Layers[1].SelfAttn.VProj;
        PeftInjector.Attach(taken, "model.layers.1.self_attn.v_proj", (TunerConfig)PeftInjector.Prepare(model, new LoraConfig { R = 2, TargetModules = TargetModules.FromNames(["v_proj"]) }), "second");
        var before = model.named_parameters().Select(p => p.name).ToList();

        var error = Assert.Throws<LoraException>(() => model.InjectAdapters());
        Assert.Contains("already exists", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, model.named_parameters().Select(p => p.name).ToList()); // "default" and layer 0's "second" gone
        Assert.True(taken.HasAdapter("second"));                                       // what was there before stays

        taken.DeleteAdapter("second");
        Assert.Equal(2 * model.Config.NumLayers, model.InjectAdapters().Count);       // and the names are free again
    }
}
