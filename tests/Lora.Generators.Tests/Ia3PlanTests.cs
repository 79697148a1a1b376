using Lora.Models;
using Lora.Peft;
using Lora.Runtime.Tests.Models;
using Lora.SafeTensors;
using Lora.Tuners.IA3;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generators.Tests;

[IA3(Targets = "k_proj|v_proj|down_proj", FeedForward = "down_proj")]
public partial class LlamaIa3 : LlamaForCausalLM
{
}

// FeedForward unset: the family's default (down_proj for Llama), as PEFT's IA3Model._prepare_adapter_config fills it.
[IA3(Targets = "k_proj|v_proj|down_proj")]
public partial class LlamaIa3DefaultFeedForward : LlamaForCausalLM
{
}

/// <summary>An <c>[IA3]</c> plan through the generator: typed injection equals the dynamic path, PEFT's IA3 adapter
/// loads into it and gives PEFT's logits, and what it saves is PEFT's IA3 format.</summary>
[Collection(TorchCollection.Name)]
public class Ia3PlanTests
{
    private static string Peft(string part = "") => Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", "llama_ia3", part);

    [Fact]
    public void Typed_ia3_injection_equals_the_dynamic_path()
    {
        using var scope = NewDisposeScope();
        using var generated = LlamaIa3.FromPretrained(Peft("base"));
        using var dynamic = CausalLM.FromPretrained(Peft("base"));
        var paths = PeftInjector.Inject(dynamic, LlamaIa3.Plan);
        Assert.Equal(paths, generated.AdapterTargets().Select(t => t.Path));
        Assert.Equal(6, paths.Count);
        Assert.Equal(dynamic.AdapterParameters().Select(p => (p.ModelName, p.PeftKey)).Order(), generated.AdapterStateDictMap().Select(m => (m.ParameterName, m.PeftKey)).Order());
        Assert.Contains(generated.AdapterStateDictMap(), m => m.PeftKey == "base_model.model.model.layers.1.mlp.down_proj.ia3_l");
        Assert.True(((Ia3Adapter)generated.Model.Layers[0].Mlp.DownProj.Adapter("default")).IsFeedForward);
        Assert.False(((Ia3Adapter)generated.Model.Layers[0].SelfAttn.VProj.Adapter("default")).IsFeedForward);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Peft_ia3_adapter_loads_into_the_plan_and_gives_peft_logits(bool defaultFeedForward)
    {
        using var scope = NewDisposeScope();
        using CausalLM model = defaultFeedForward ? LlamaIa3DefaultFeedForward.FromPretrained(Peft("base")) : LlamaIa3.FromPretrained(Peft("base"));
        ((IPeftModel)model).LoadAdapter(Peft("adapter"));
        using var expected = SafeTensorsFile.Open(Peft("expected.safetensors"));
        using var noGrad = no_grad();
        LogitsAssert.Close(model.Forward(expected.Load("input_ids")), expected.Load("adapter_logits"), what: "[IA3] vs PEFT");
    }

    [Fact]
    public void SaveAdapter_writes_peft_ia3_lists_and_the_dynamic_path_reloads_it()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaIa3.FromPretrained(Peft("base"));
        model.LoadAdapter(Peft("adapter"));
        var dir = Path.Combine(Path.GetTempPath(), "lora-generator-tests", Guid.NewGuid().ToString("N"));
        model.SaveAdapter(dir);
        var saved = PeftConfigFile.Read<Ia3Config>(dir);
        Assert.Equal(["down_proj", "k_proj", "v_proj"], saved.TargetModules!.Names!.Order(StringComparer.Ordinal));
        Assert.Equal(["down_proj"], saved.FeedforwardModules!.Names);

        using var fresh = CausalLM.FromPretrained(Peft("base"));
        PeftAdapter.Load(fresh, dir);
        using var expected = SafeTensorsFile.Open(Peft("expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        Assert.True(fresh.Forward(ids).equal(model.Forward(ids)).all().item<bool>());
    }

    [Fact]
    public void A_lora_adapter_is_refused_by_an_ia3_plan()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaIa3.FromPretrained(Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", "llama_qv", "base"));
        var e = Assert.Throws<LoraException>(() => model.LoadAdapter(Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", "llama_qv", "adapter")));
        Assert.Contains("peft_type = LORA (plan: IA3)", e.Message, StringComparison.Ordinal);
    }
}
