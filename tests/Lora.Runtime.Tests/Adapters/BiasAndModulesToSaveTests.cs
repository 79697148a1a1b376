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

    /// <summary>Injection freezes the base as get_peft_model does: a custom loop's backward reaches only the
    /// adapters and what the config trains besides (here bias="lora_only" on the targets and modules_to_save "norm").</summary>
    [Fact]
    public void Inject_freezes_the_base_but_not_the_adapters_or_the_configs_extra_trainables()
    {
        using var scope = NewDisposeScope();
        using var model = Base();
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad)); // a fresh TorchSharp module trains everything
        var config = new LoraConfig
        {
            R = 4, LoraAlpha = 8, InitLoraWeights = "false", Bias = LoraBias.LoraOnly,
            TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]), ModulesToSave = ["norm"],
        };
        PeftInjector.Inject(model, config);
        var expected = model.MarkTrainable(config).Select(t => t.Name).ToHashSet(); // what the trainer would train
        using var fresh = Base();
        PeftInjector.Inject(fresh, config);
        var trainable = fresh.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToHashSet();
        Assert.Equal(expected.Order(StringComparer.Ordinal), trainable.Order(StringComparer.Ordinal));
        Assert.Contains("model.layers.0.self_attn.q_proj.adapters.default.lora_A.weight", trainable);
        Assert.Contains("model.norm.weight", trainable);
        Assert.DoesNotContain("model.layers.0.self_attn.q_proj.weight", trainable);
        Assert.DoesNotContain("model.embed_tokens.weight", trainable);

        fresh.train();
        fresh.Forward(tensor(Ids, [1, Ids.Length])).sum().backward();
        foreach (var (name, p) in fresh.named_parameters())
        {
            using var grad = p.grad;
            Assert.True(trainable.Contains(name) == grad is not null, $"{name}: gradient {(grad is null ? "missing" : "present")}");
        }
    }

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
        var e = Assert.Throws<LoraException>(() => PeftInjector.Inject(model, config)); // it resolves them to freeze the rest
        Assert.Contains("score", e.Message, StringComparison.Ordinal);
        Assert.Contains("score", Assert.Throws<LoraException>(() => model.MarkTrainable(config)).Message, StringComparison.Ordinal);
    }
}
