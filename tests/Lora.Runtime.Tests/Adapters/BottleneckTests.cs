using System.Text.Json.Nodes;
using Lora.Generation;
using Lora.Models;
using Lora.Modules;
using Lora.Peft;
using Lora.Runtime.Tests.Models;
using Lora.Runtime.Tests.Training;
using Lora.SafeTensors;
using Lora.Training;
using Lora.Tuners.Bottleneck;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Adapters;

/// <summary>Bottleneck adapters (Houlsby, Pfeiffer) in AdapterHub's slots and format: AdapterHub's math (transcribed
/// reference), a no-op at init, AdapterHub's files, reload, generation with and without the cache, training.</summary>
[Collection(TrainerCollection.Name)]
public class BottleneckTests
{
    private static Tensor InputIds(string @case)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        return file.Load("input_ids");
    }

    [Theory]
    [InlineData("pfeiffer_relu", true, "relu", 1.0)]
    [InlineData("houlsby_swish", false, "swish", 1.0)]
    [InlineData("pfeiffer_gelu_new_scaled", true, "gelu_new", 0.5)]
    public void The_adapter_computes_adapterhubs_bottleneck_layer_forward(string expected, bool originalLnBefore, string activation, double scaling)
    {
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Root, "bottleneck", "bottleneck_reference.safetensors"));
        using var adapter = new BottleneckAdapter(16, 4, activation, originalLnBefore, scaling, 0, BottleneckInit.Bert);
        using (no_grad())
        {
            ((TorchSharp.Modules.Linear)adapter.AdapterDown[0]).weight!.copy_(file.Load("down_weight"));
            ((TorchSharp.Modules.Linear)adapter.AdapterDown[0]).bias!.copy_(file.Load("down_bias"));
            adapter.AdapterUp.weight!.copy_(file.Load("up_weight"));
            adapter.AdapterUp.bias!.copy_(file.Load("up_bias"));
        }

        using var noGrad = no_grad();
        LogitsAssert.Close(adapter.Apply(file.Load("s"), file.Load("x")), file.Load(expected), rtol: 1e-6, what: expected);
    }

    [Theory]
    [InlineData("llama_qv", BottleneckPlacement.Pfeiffer)]
    [InlineData("llama_qv", BottleneckPlacement.Houlsby)]
    [InlineData("gpt2_c_attn", BottleneckPlacement.Houlsby)]
    public void A_new_adapter_leaves_the_logits_unchanged_and_sits_in_adapterhubs_slots(string @case, BottleneckPlacement placement)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        var ids = InputIds(@case);
        using var noGrad = no_grad();
        var before = model.Forward(ids);
        var paths = PeftInjector.Inject(model, BottleneckConfig.For(placement, size: 8));
        var slots = placement == BottleneckPlacement.Houlsby ? 2 : 1;
        Assert.Equal(model.Config.NumLayers * slots, paths.Count);
        Assert.All(paths, p => Assert.Matches(placement == BottleneckPlacement.Houlsby ? @"\.(attention|output)_adapters$" : @"\.output_adapters$", p));
        // AdapterHub's up projection starts at zero (init_weights mam_adapter): exactly the base model.
        Assert.True(model.Forward(ids).equal(before).all().item<bool>());
        var prefix = @case == "gpt2_c_attn" ? "transformer.h.0" : "model.layers.0";
        Assert.Contains($"{prefix}.output_adapters.adapters.default.adapter_down.0.weight", model.named_parameters().Select(p => p.name));
    }

    private static BottleneckConfig Random(BottleneckPlacement placement) => BottleneckConfig.For(placement, size: 8) with { InitWeights = BottleneckInit.Bert };

    [Theory]
    [InlineData(BottleneckPlacement.Pfeiffer)]
    [InlineData(BottleneckPlacement.Houlsby)]
    public void Saves_adapterhubs_directory_and_reloads_to_the_same_logits(BottleneckPlacement placement)
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var config = Random(placement);
        PeftInjector.Inject(model, config);
        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, config);

        Assert.False(File.Exists(Path.Combine(dir, PeftAdapter.WeightsFileName)));
        using (var file = SafeTensorsFile.Open(Path.Combine(dir, AdapterHubFormat.WeightsFileName)))
        {
            var slots = placement == BottleneckPlacement.Houlsby ? new[] { "attention_adapters", "output_adapters" } : ["output_adapters"];
            var expected = from layer in Enumerable.Range(0, 2)
                           from slot in slots
                           from p in new[] { "adapter_down.0.weight", "adapter_down.0.bias", "adapter_up.weight", "adapter_up.bias" }
                           select $"model.layers.{layer}.{slot}.adapters.default.{p}";
            Assert.Equal(expected.Order(StringComparer.Ordinal), file.Tensors.Keys.Order(StringComparer.Ordinal));
            Assert.Equal(new long[] { 8, 64 }, file.Tensors["model.layers.0.output_adapters.adapters.default.adapter_down.0.weight"].Shape);
        }

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, PeftConfigFile.FileName)))!.AsObject();
        Assert.False(json.ContainsKey("peft_type"));
        Assert.Equal(("llama", 64, "default", "LlamaForCausalLM"), ((string?)json["model_type"], (int)json["hidden_size"]!, (string?)json["name"], (string?)json["model_class"]));
        Assert.StartsWith("adapters.", (string?)json["version"], StringComparison.Ordinal);
        var bn = json["config"]!.AsObject();
        Assert.Equal(8.0, (double)bn["reduction_factor"]!);
        Assert.Equal(placement == BottleneckPlacement.Houlsby, (bool)bn["mh_adapter"]!);
        Assert.Equal(placement == BottleneckPlacement.Pfeiffer, (bool)bn["original_ln_before"]!);
        Assert.Equal(placement == BottleneckPlacement.Houlsby ? "swish" : "relu", (string?)bn["non_linearity"]);
        Assert.Null(bn["architecture"]);
        Assert.Equal(json.Select(p => p.Key).Order(StringComparer.Ordinal), json.Select(p => p.Key));

        using var fresh = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var loaded = PeftAdapter.Load<BottleneckConfig>(fresh, dir);
        Assert.Equal(placement == BottleneckPlacement.Houlsby, loaded.MhAdapter);
        var ids = InputIds("llama_qv");
        using var noGrad = no_grad();
        var logits = model.Forward(ids);
        Assert.True(fresh.Forward(ids).equal(logits).all().item<bool>());
        using (fresh.DisableAdapters())
            Assert.False(fresh.Forward(ids).allclose(logits), "a random adapter changes the logits");
    }

    [Fact]
    public void An_adapterhub_config_as_the_library_writes_it_loads_with_a_default_reduction_mapping_and_headless_keys()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftInjector.Inject(model, Random(BottleneckPlacement.Pfeiffer));
        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, Random(BottleneckPlacement.Pfeiffer));

        // A LlamaModel (no head) saved by AdapterHub under the name "sst": keys without "model.", {"default": 8}.
        var hub = Fixtures.TempDirectory();
        using (var ours = SafeTensorsFile.Open(Path.Combine(dir, AdapterHubFormat.WeightsFileName)))
            SafeTensorsWriter.Write(Path.Combine(hub, AdapterHubFormat.WeightsFileName), ours.Tensors.Keys.ToDictionary(k => k["model.".Length..].Replace(".default.", ".sst."), k => ours.Load(k)));
        File.WriteAllText(Path.Combine(hub, PeftConfigFile.FileName), """
            {
              "config": {
                "adapter_residual_before_ln": false, "cross_adapter": false, "dropout": 0.0, "factorized_phm_W": true,
                "factorized_phm_rule": false, "hypercomplex_nonlinearity": "glorot-uniform", "init_weights": "bert",
                "inv_adapter": null, "inv_adapter_reduction_factor": null, "is_parallel": false, "learn_phm": true,
                "leave_out": [], "ln_after": false, "ln_before": false, "mh_adapter": false, "non_linearity": "relu",
                "original_ln_after": true, "original_ln_before": true, "output_adapter": true, "phm_bias": true,
                "phm_c_init": "normal", "phm_dim": 4, "phm_init_range": 0.0001, "phm_layer": false, "phm_rank": 1,
                "reduction_factor": {"default": 8}, "residual_before_ln": true, "scaling": 1.0, "shared_W_phm": false,
                "shared_phm_rule": true, "stochastic_depth": 0.0, "use_gating": false
              },
              "hidden_size": 64, "model_class": "LlamaModel", "model_name": "tiny", "model_type": "llama",
              "name": "sst", "version": "adapters.1.1.0"
            }
            """);
        using var fresh = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var warnings = new List<string>();
        PeftAdapter.Load(fresh, hub, "mine", warnings.Add);
        Assert.Empty(warnings);
        var ids = InputIds("llama_qv");
        using var noGrad = no_grad();
        Assert.True(fresh.Forward(ids).equal(model.Forward(ids)).all().item<bool>());

        // What the runtime cannot do is refused with the field named.
        File.WriteAllText(Path.Combine(hub, PeftConfigFile.FileName), File.ReadAllText(Path.Combine(hub, PeftConfigFile.FileName)).Replace("\"use_gating\": false", "\"use_gating\": true"));
        Assert.Contains("use_gating", Assert.Throws<LoraException>(() => PeftConfigFile.Read(hub)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("llama_qv", BottleneckPlacement.Houlsby)]
    [InlineData("gpt2_c_attn", BottleneckPlacement.Pfeiffer)]
    public void Cached_generation_equals_uncached_and_merging_is_refused(string @case, BottleneckPlacement placement)
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        PeftInjector.Inject(model, Random(placement) with { InitWeights = BottleneckInit.Bert });
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.Contains("adapter_up", StringComparison.Ordinal)))
                p.normal_(0, 0.5);
        }

        IReadOnlyList<int>[] prompts = [[5, 17, 42, 8, 99, 3], [7, 1, 250]];
        var cached = TokenGenerator.Generate(model, prompts, new GenerationOptions { MaxNewTokens = 8 });
        var uncached = TokenGenerator.Generate(model, prompts, new GenerationOptions { MaxNewTokens = 8, UseCache = false });
        Assert.Equal(uncached.Select(s => s.Tokens), cached.Select(s => s.Tokens));
        Assert.Contains("cannot be merged", Assert.Throws<LoraException>(() => model.MergeAdapters()).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(BottleneckPlacement.Pfeiffer)]
    [InlineData(BottleneckPlacement.Houlsby)]
    public void Trains_the_loss_falls_and_only_the_adapters_change(BottleneckPlacement placement)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var config = BottleneckConfig.For(placement, size: 16);
        PeftInjector.Inject(model, config);
        var baseWeight = model.Model.Layers[0].Mlp.DownProj.Weight.clone();
        var dir = Fixtures.TempDirectory();
        using (var trainer = new Trainer(model, new TrainingOptions { LearningRate = 0.01, MaxSteps = 20, BatchSize = 4, SaveSteps = 0, LoggingSteps = 5, Scheduler = SchedulerType.Constant }, dir, PromptLearningTests.InstructionData(), adapterConfig: config))
        {
            Assert.All(trainer.TrainableParameters, p => Assert.Contains("_adapters.adapters.default.adapter_", p.Name, StringComparison.Ordinal));
            var losses = trainer.Train().LogHistory.Where(e => e.Loss is not null).Select(e => e.Loss!.Value).ToList();
            Assert.True(losses[^1] < losses[0] - 0.3, $"loss {losses[0]} → {losses[^1]}");
        }

        Assert.True(model.Model.Layers[0].Mlp.DownProj.Weight.equal(baseWeight).all().item<bool>());
        Assert.True(File.Exists(Path.Combine(dir, AdapterHubFormat.WeightsFileName)));
        using var reloaded = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftAdapter.Load(reloaded, dir);
        Assert.IsType<BottleneckConfig>(PeftConfigFile.Read(dir));
    }

    [Fact]
    public void Bad_sizes_and_activations_are_refused()
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        Assert.Contains("1..64", Assert.Throws<LoraException>(() => PeftInjector.Inject(model, BottleneckConfig.Pfeiffer(size: 65))).Message, StringComparison.Ordinal);
        Assert.Contains("non_linearity", Assert.Throws<LoraException>(() => PeftInjector.Inject(model, BottleneckConfig.Pfeiffer(size: 8, nonLinearity: "softplus"))).Message, StringComparison.Ordinal);
        Assert.Empty(model.AdaptedLayers());
    }
}
