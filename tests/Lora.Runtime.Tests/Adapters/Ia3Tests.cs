using Lora.Models;
using Lora.Modules;
using Lora.Peft;
using Lora.Runtime.Tests.Models;
using Lora.Runtime.Tests.Training;
using Lora.SafeTensors;
using Lora.Training;
using Lora.Tuners.IA3;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Adapters;

/// <summary>IA3 (PEFT's <c>IA3Config</c>) on the method seam: PEFT's adapter gives PEFT's logits, ours saves in PEFT's
/// format and reloads to the same logits, merged equals unmerged, and it trains.</summary>
[Collection(TrainerCollection.Name)]
public class Ia3Tests
{
    private const string Case = "llama_ia3";

    [Fact]
    public void Peft_ia3_adapter_gives_peft_logits()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft(Case, "base"));
        var warnings = new List<string>();
        var config = PeftAdapter.Load<Ia3Config>(model, Fixtures.Peft(Case, "adapter"), warnings: warnings.Add);
        Assert.Empty(warnings);
        Assert.Equal(["down_proj"], config.FeedforwardModules!.Names);

        // Feed-forward layers carry [1, in] vectors that scale the input, the others [out, 1] that scale the output.
        var down = (Ia3Adapter)model.Model.Layers[0].Mlp.DownProj.Adapter("default");
        var k = (Ia3Adapter)model.Model.Layers[0].SelfAttn.KProj.Adapter("default");
        Assert.True(down.IsFeedForward);
        Assert.Equal(new long[] { 1, 128 }, down.Vector.shape);
        Assert.False(k.IsFeedForward);
        Assert.Equal(new long[] { 32, 1 }, k.Vector.shape);
        Assert.False(model.Model.Layers[0].SelfAttn.QProj.AdapterNames.Any());

        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(Case), "expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        LogitsAssert.Close(model.Forward(ids), expected.Load("adapter_logits"), what: "IA3 vs PEFT");
        using (model.DisableAdapters())
            LogitsAssert.Close(model.Forward(ids), expected.Load("base_logits"), what: "IA3 disabled");
    }

    [Fact]
    public void Saved_ia3_adapter_has_peft_keys_and_config_and_reloads_to_the_same_logits()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft(Case, "base"));
        var config = PeftAdapter.Load<Ia3Config>(model, Fixtures.Peft(Case, "adapter"));
        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, config);

        using (var ours = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName)))
        using (var peft = SafeTensorsFile.Open(Fixtures.Peft(Case, "adapter/" + PeftAdapter.WeightsFileName)))
        {
            Assert.Equal(peft.Tensors.Keys.Order(StringComparer.Ordinal), ours.Tensors.Keys.Order(StringComparer.Ordinal));
            Assert.Contains("base_model.model.model.layers.0.mlp.down_proj.ia3_l", ours.Tensors.Keys);
            foreach (var name in peft.Tensors.Keys)
                Assert.True(ours.Load(name).equal(peft.Load(name)).all().item<bool>(), name);
        }

        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, PeftConfigFile.FileName)))!.AsObject();
        Assert.Equal("IA3", (string?)json["peft_type"]);
        Assert.Equal(["down_proj", "k_proj", "v_proj"], json["target_modules"]!.AsArray().Select(n => (string?)n));
        Assert.Equal(["down_proj"], json["feedforward_modules"]!.AsArray().Select(n => (string?)n));
        Assert.True((bool)json["init_ia3_weights"]!);
        Assert.False(json.ContainsKey("r"));

        using var fresh = CausalLM.FromPretrained(Fixtures.Peft(Case, "base"));
        PeftAdapter.Load(fresh, dir);
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(Case), "expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        Assert.True(fresh.Forward(ids).equal(model.Forward(ids)).all().item<bool>());
    }

    [Fact]
    public void Merged_equals_unmerged_and_unmerge_restores_the_base()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft(Case, "base"));
        PeftAdapter.Load(model, Fixtures.Peft(Case, "adapter"));
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(Case), "expected.safetensors"));
        using var noGrad = no_grad();
        var ids = expected.Load("input_ids");
        var before = model.Forward(ids);
        var weight = model.Model.Layers[1].Mlp.DownProj.Weight.clone();

        model.MergeAdapters();
        LogitsAssert.Close(model.Forward(ids), before, what: "merged");
        // Feed-forward merge scales W's columns: W ← W · diag(l).
        var l = ((Ia3Adapter)model.Model.Layers[1].Mlp.DownProj.Adapter("default")).Vector;
        Assert.True(model.Model.Layers[1].Mlp.DownProj.Weight.allclose(weight * l, rtol: 1e-6, atol: 1e-7));

        model.UnmergeAdapters();
        Assert.True(model.Model.Layers[1].Mlp.DownProj.Weight.allclose(weight, rtol: 1e-5, atol: 1e-6));
        model.MergeAndUnload();
        Assert.Empty(model.AdaptedLayers());
        LogitsAssert.Close(model.Forward(ids), before, what: "merge and unload");
    }

    [Fact]
    public void A_linear_with_bias_scales_its_bias_on_merge_as_peft_does()
    {
        using var scope = NewDisposeScope();
        using var layer = new LinearLayer(6, 4, hasBias: true);
        using (no_grad())
        {
            layer.Weight.normal_();
            layer.Bias!.normal_();
        }

        layer.AddAdapter("a", new Ia3Adapter(6, 4, isFeedForward: false, initOnes: false));
        using var x = randn(3, 6);
        using var noGrad = no_grad();
        var adapted = layer.call(x);
        var l = ((Ia3Adapter)layer.Adapter("a")).Vector.flatten();
        Assert.True(adapted.allclose(layer.BaseForward(x) * l, rtol: 1e-6, atol: 1e-6));
        layer.Merge();
        Assert.True(layer.call(x).allclose(adapted, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Default_targets_and_feed_forward_come_from_the_model_family()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft(Case, "base"));
        var paths = PeftInjector.Inject(model, new Ia3Config());
        Assert.Equal(6, paths.Count);
        Assert.True(((Ia3Adapter)model.Model.Layers[0].Mlp.DownProj.Adapter("default")).IsFeedForward);
        Assert.All(paths.Where(p => !p.EndsWith("down_proj", StringComparison.Ordinal)), p => Assert.Matches(@"\.(k_proj|v_proj)$", p));
    }

    [Fact]
    public void Feed_forward_modules_outside_the_targets_are_refused_as_peft_does()
    {
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft(Case, "base"));
        var e = Assert.Throws<LoraException>(() => PeftInjector.Inject(model, new Ia3Config
        {
            TargetModules = TargetModules.FromNames(["k_proj"]),
            FeedforwardModules = TargetModules.FromNames(["down_proj"]),
        }));
        Assert.Contains("subset of target_modules", e.Message, StringComparison.Ordinal);
        Assert.Contains("cannot host IA3", Assert.Throws<LoraException>(() => PeftInjector.Inject(model, new Ia3Config
        {
            TargetModules = TargetModules.FromNames(["embed_tokens"]),
            FeedforwardModules = TargetModules.FromNames([]),
        })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Ia3_trains_the_loss_falls_and_only_the_vectors_change()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft(Case, "base"));
        var config = new Ia3Config { TargetModules = TargetModules.FromNames(["k_proj", "v_proj", "down_proj"]), FeedforwardModules = TargetModules.FromNames(["down_proj"]) };
        PeftInjector.Inject(model, config);
        var baseWeight = model.Model.Layers[0].SelfAttn.KProj.Weight.clone();
        // Four fixed sequences, each seen over and over: something a few vectors can fit.
        var data = Enumerable.Range(0, 4)
            .Select(r => Enumerable.Range(0, 16).Select(t => (r * 37 + t * 11) % model.Config.VocabSize).ToArray())
            .Select(ids => new Lora.Data.TokenizedExample(ids, ids))
            .ToList();
        var dir = Fixtures.TempDirectory();
        using (var trainer = new Trainer(model, new TrainingOptions { LearningRate = 0.5, MaxSteps = 30, BatchSize = 4, SaveSteps = 0, LoggingSteps = 5, WarmupSteps = 0, Scheduler = SchedulerType.Constant }, dir, data, adapterConfig: config))
        {
            Assert.All(trainer.TrainableParameters, p => Assert.EndsWith(".ia3_l", p.Name, StringComparison.Ordinal));
            var result = trainer.Train();
            var losses = result.LogHistory.Where(e => e.Loss is not null).Select(e => e.Loss!.Value).ToList();
            Assert.True(losses[^1] < losses[0] - 0.25, $"loss {losses[0]} → {losses[^1]}");
        }

        Assert.True(model.Model.Layers[0].SelfAttn.KProj.Weight.equal(baseWeight).all().item<bool>());
        Assert.Equal("IA3", PeftConfigFile.Read(dir).PeftType);
        using var reloaded = LlamaForCausalLM.FromPretrained(Fixtures.Peft(Case, "base"));
        PeftAdapter.Load(reloaded, dir);
        Assert.False(((Ia3Adapter)reloaded.Model.Layers[0].SelfAttn.KProj.Adapter("default")).Vector.allclose(ones(32, 1)));
    }
}
