using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Models;
using Lora.Runtime.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Adapters;

/// <summary>bias="lora_only"/"all" and modules_to_save: PEFT keys, round trip, and the base model back when the
/// adapter is disabled or removed.</summary>
public class BiasAndModulesToSaveTests
{
    private static readonly long[] Ids = [5, 17, 42, 8, 99, 3, 250, 7];

    private static Tensor Logits(CausalLM model)
    {
        using var noGrad = no_grad();
        return model.Forward(tensor(Ids, [1, Ids.Length]));
    }

    private static CausalLM Base() => CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"));

    [Fact]
    public void Lora_only_biases_and_modules_to_save_round_trip_with_peft_keys()
    {
        using var scope = NewDisposeScope();
        using var model = Base();
        var baseLogits = Logits(model);
        var config = new LoraConfig
        {
            R = 4, LoraAlpha = 8, InitLoraWeights = "false", Bias = LoraBias.LoraOnly,
            TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]),
            ModulesToSave = ["norm"],
        };
        PeftInjector.Inject(model, config);
        var trainable = model.MarkTrainable(config).Select(t => t.Name).ToList();
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", trainable);
        Assert.DoesNotContain("model.layers.0.self_attn.k_proj.bias", trainable);
        Assert.Contains("model.norm.weight", trainable);

        // Train-like changes to the extra parameters.
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters().Where(p => trainable.Contains(p.name) && !p.name.Contains(".adapters.", StringComparison.Ordinal)))
                p.add_(0.1);
        }

        var adapted = Logits(model);
        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, config);
        var keys = PeftAdapter.StateDict(model, config: config).Keys.ToList();
        Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.base_layer.bias", keys);
        Assert.Contains("base_model.model.model.norm.weight", keys);
        Assert.DoesNotContain("base_model.model.model.layers.0.self_attn.k_proj.base_layer.bias", keys);
        Assert.Equal(new[] { "norm" }, PeftConfigFile.Read<LoraConfig>(dir).ModulesToSave);

        using var fresh = Base();
        PeftAdapter.Load<LoraConfig>(fresh, dir);
        LogitsAssert.Close(Logits(fresh), adapted, what: "reloaded");
        using (fresh.DisableAdapters())
            LogitsAssert.Close(Logits(fresh), baseLogits, what: "disabled");
        LogitsAssert.Close(Logits(fresh), adapted, what: "re-enabled");
        PeftAdapter.Remove(fresh, PeftAdapter.DefaultName);
        LogitsAssert.Close(Logits(fresh), baseLogits, what: "removed");
    }

    [Fact]
    public void Bias_all_saves_every_bias()
    {
        using var model = Base();
        var config = new LoraConfig { R = 2, LoraAlpha = 4, Bias = LoraBias.All, TargetModules = TargetModules.FromNames(["q_proj"]) };
        PeftInjector.Inject(model, config);
        var keys = PeftAdapter.StateDict(model, config: config).Keys.ToList();
        Assert.Contains("base_model.model.model.layers.1.self_attn.q_proj.base_layer.bias", keys);
        Assert.Contains("base_model.model.model.layers.1.self_attn.k_proj.bias", keys);
        Assert.Contains("base_model.model.model.layers.1.self_attn.v_proj.bias", keys);
    }

    [Fact]
    public void Modules_to_save_naming_a_missing_module_is_an_error()
    {
        using var model = Base();
        var config = new LoraConfig { TargetModules = TargetModules.FromNames(["q_proj"]), ModulesToSave = ["score"] };
        PeftInjector.Inject(model, config);
        var e = Assert.Throws<LoraException>(() => model.MarkTrainable(config));
        Assert.Contains("score", e.Message, StringComparison.Ordinal);
    }
}
