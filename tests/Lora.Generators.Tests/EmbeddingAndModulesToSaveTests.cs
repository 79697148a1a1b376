using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Models;
using Lora.Modules;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generators.Tests;

[Lora(R = 4, Alpha = 8, Targets = "embed_tokens|q_proj|v_proj", ModulesToSave = new[] { "lm_head" })]
public partial class LlamaEmbedLora : LlamaForCausalLM
{
}

/// <summary>
/// LoRA on an embedding table and <c>modules_to_save</c> through the generated members: the typed injection attaches
/// the same adapters as the dynamic path (embeddings included, same seed, same values), <c>MarkLoraTrainable</c> trains
/// what the plan saves (the runtime's <c>MarkTrainable(config)</c>), and <c>SaveAdapter</c>/<c>LoadAdapter</c> carry
/// the embedding factors and the full <c>lm_head</c> under PEFT's keys.
/// </summary>
[Collection(TorchCollection.Name)]
public class EmbeddingAndModulesToSaveTests
{
    private static string Base => Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", "llama_qv", "base");

    [Fact]
    public void Typed_injection_includes_the_embedding_like_the_dynamic_path()
    {
        using var scope = NewDisposeScope();
        var config = (LlamaConfig)ModelConfigLoader.Load(Base);
        using var generated = new LlamaEmbedLora(config);
        using var dynamic = new LlamaForCausalLM(config);
        torch.manual_seed(7);
        var typed = generated.InjectAdapters();
        torch.manual_seed(7);
        var expected = PeftInjector.Inject(dynamic, LlamaEmbedLora.Plan);
        Assert.Equal(expected, typed);
        Assert.Equal("model.embed_tokens", typed[0]);
        Assert.Equal(["model.embed_tokens"], generated.AdapterTargets().Where(t => t.Layer is EmbeddingLayer).Select(t => t.Path));
        Assert.Equal(5, generated.AdapterTargets().Count);

        var ours = generated.AdapterParameters().ToDictionary(p => p.ModelName, p => p.Parameter);
        var theirs = dynamic.AdapterParameters().ToDictionary(p => p.ModelName, p => p.Parameter);
        Assert.Equal(theirs.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, parameter) in ours)
            Assert.True(parameter.equal(theirs[name]).all().item<bool>(), $"{name}: same seed, same init");
        Assert.Equal(ours.Keys.Order(StringComparer.Ordinal), generated.AdapterStateDictMap().Select(p => p.ParameterName).Order(StringComparer.Ordinal));
        Assert.Contains(generated.AdapterStateDictMap(), m => m.PeftKey == "base_model.model.model.embed_tokens.lora_embedding_A");
    }

    [Fact]
    public void MarkLoraTrainable_trains_modules_to_save_and_SaveAdapter_LoadAdapter_carry_them()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaEmbedLora.FromPretrained(Base);
        var trainable = model.MarkAdaptersTrainable().Select(p => p.Name).ToList();
        Assert.Contains("lm_head.weight", trainable);
        Assert.Contains("model.embed_tokens.adapters.default.lora_embedding_A", trainable);
        Assert.DoesNotContain("model.embed_tokens.weight", trainable);
        Assert.Equal(model.AdapterParameters().Count() + 1, trainable.Count);

        // Train-like changes: a non-zero embedding update and a changed head.
        using (no_grad())
        {
            foreach (var parameter in model.AdapterParameters().Select(p => p.Parameter))
                parameter.copy_(torch.rand_like(parameter) * 0.1);
            model.LmHead.Weight.add_(0.5f);
        }

        var dir = Path.Combine(Path.GetTempPath(), "lora-generator-tests", Guid.NewGuid().ToString("N"));
        model.SaveAdapter(dir);
        var saved = PeftConfigFile.Read<LoraConfig>(dir);
        Assert.Equal(["embed_tokens", "q_proj", "v_proj"], saved.TargetModules!.Names!.Order(StringComparer.Ordinal));
        Assert.Equal(["lm_head"], saved.ModulesToSave);
        using (var file = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName)))
        {
            Assert.Contains("base_model.model.lm_head.weight", file.Tensors.Keys);
            Assert.Contains("base_model.model.model.embed_tokens.lora_embedding_B", file.Tensors.Keys);
        }

        using var fresh = LlamaEmbedLora.FromPretrained(Base);
        fresh.LoadAdapter(dir);
        using var noGrad = no_grad();
        var ids = torch.tensor(new long[] { 1, 5, 9, 42, 7 }, [1, 5]);
        Assert.True(fresh.Forward(ids).allclose(model.Forward(ids), rtol: 1e-5, atol: 1e-6));

        // The dynamic path reads the same directory to the same model.
        using var dynamic = CausalLM.FromPretrained(Base);
        PeftAdapter.Load<LoraConfig>(dynamic, dir);
        Assert.True(dynamic.Forward(ids).allclose(model.Forward(ids), rtol: 1e-5, atol: 1e-6));
    }
}
