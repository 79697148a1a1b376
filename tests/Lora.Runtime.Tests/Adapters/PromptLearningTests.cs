using System.Text.Json.Nodes;
using Lora.Generation;
using Lora.Models;
using Lora.Peft;
using Lora.Runtime.Tests.Models;
using Lora.Runtime.Tests.Training;
using Lora.SafeTensors;
using Lora.Training;
using Lora.Tuners.Bottleneck;
using Lora.Tuners.LoRA;
using Lora.Tuners.PrefixTuning;
using Lora.Tuners.PromptTuning;
using Lora.Tuners.PTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Adapters;

/// <summary>
/// The prompt-learning methods (PEFT's prefix tuning, prompt tuning, P-tuning) on the method seam: PEFT's adapter
/// files give PEFT's logits (prompt tuning with its virtual positions), ours are PEFT's format and reload to the same
/// logits, cached generation equals uncached, each trains.
/// </summary>
[Collection(TrainerCollection.Name)]
public class PromptLearningTests
{
    private static (Tensor Ids, Tensor Base, Tensor Adapter) Expected(string @case)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        return (file.Load("input_ids"), file.Load("base_logits"), file.Load("adapter_logits"));
    }

    private static Tensor InputIds(string @case)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        return file.Load("input_ids");
    }

    private static JsonObject ConfigJson(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, PeftConfigFile.FileName)))!.AsObject();

    [Fact]
    public void Peft_prefix_tuning_adapter_gives_peft_logits_with_gqa_prefixes()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft("llama_prefix", "base"));
        var warnings = new List<string>();
        var config = PeftAdapter.Load<PrefixTuningConfig>(model, Fixtures.Peft("llama_prefix", "adapter"), warnings: warnings.Add);
        Assert.Empty(warnings);
        // GQA (4 query heads, 2 key/value heads of 16): PEFT sizes the prefixes per key/value head.
        Assert.Equal((4, 32, 2, 2), (config.NumVirtualTokens, config.TokenDim!.Value, config.NumAttentionHeads!.Value, config.NumLayers!.Value));
        Assert.False(config.PrefixProjection);

        var (ids, baseLogits, adapterLogits) = Expected("llama_prefix");
        using var noGrad = no_grad();
        LogitsAssert.Close(model.Forward(ids), adapterLogits, what: "prefix tuning vs PEFT");
        using (model.DisableAdapters())
            LogitsAssert.Close(model.Forward(ids), baseLogits, what: "prefix tuning disabled");
    }

    [Fact]
    public void Peft_prompt_tuning_adapter_gives_peft_logits_including_the_virtual_positions()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft("llama_prompt", "base"));
        var config = PeftAdapter.Load<PromptTuningConfig>(model, Fixtures.Peft("llama_prompt", "adapter"));
        Assert.Equal((3, 64), (config.NumVirtualTokens, config.TokenDim!.Value));

        var (ids, baseLogits, adapterLogits) = Expected("llama_prompt");
        using var noGrad = no_grad();
        var logits = model.Forward(ids);
        Assert.Equal(new long[] { 2, 15, 300 }, logits.shape);
        LogitsAssert.Close(logits, adapterLogits, what: "prompt tuning vs PEFT");
        using (model.DisableAdapters())
            LogitsAssert.Close(model.Forward(ids), baseLogits, what: "prompt tuning disabled");
    }

    [Theory]
    [InlineData("llama_prefix")]
    [InlineData("llama_prompt")]
    public void Saved_adapter_is_pefts_file_and_config_and_reloads_to_the_same_logits(string @case)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        var config = PeftAdapter.Load(model, Fixtures.Peft(@case, "adapter"));
        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, config);

        using (var ours = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName)))
        using (var peft = SafeTensorsFile.Open(Fixtures.Peft(@case, "adapter/" + PeftAdapter.WeightsFileName)))
        {
            Assert.Equal(["prompt_embeddings"], ours.Tensors.Keys);
            Assert.True(ours.Load("prompt_embeddings").equal(peft.Load("prompt_embeddings")).all().item<bool>());
        }

        Assert.False(File.Exists(Path.Combine(dir, PromptLearningFiles.EncoderStateFileName)), "no reparameterisation, no encoder state file");
        var ours2 = ConfigJson(dir);
        var theirs = ConfigJson(Fixtures.Peft(@case, "adapter"));
        // Every field PEFT wrote, with PEFT's value (the version stamp aside).
        foreach (var (key, value) in theirs.Where(p => p.Key != "peft_version"))
            Assert.True(JsonNode.DeepEquals(value, ours2[key]), $"{key}: PEFT {value?.ToJsonString()}, ours {ours2[key]?.ToJsonString()}");

        using var fresh = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        PeftAdapter.Load(fresh, dir);
        var (ids, _, _) = Expected(@case);
        using var noGrad = no_grad();
        Assert.True(fresh.Forward(ids).equal(model.Forward(ids)).all().item<bool>());
    }

    /// <summary>Fresh adapters of every prompt-learning kind, with non-trivial values.</summary>
    public static TheoryData<string, string> Methods() => new()
    {
        { "llama_qv", "prefix" }, { "llama_qv", "ptuning-v2" }, { "llama_qv", "prompt" }, { "llama_qv", "ptuning" }, { "llama_qv", "ptuning-lstm" },
        { "gpt2_c_attn", "prefix" }, { "gpt2_c_attn", "prompt" },
    };

    internal static PromptLearningConfig ConfigFor(string method) => method switch
    {
        "prefix" => new PrefixTuningConfig { NumVirtualTokens = 5, PrefixProjection = true, EncoderHiddenSize = 24 },
        "ptuning-v2" => new PrefixTuningConfig { NumVirtualTokens = 5 },
        "prompt" => new PromptTuningConfig { NumVirtualTokens = 5 },
        "ptuning" => new PTuningConfig { NumVirtualTokens = 5, EncoderHiddenSize = 16 },
        "ptuning-lstm" => new PTuningConfig { NumVirtualTokens = 5, EncoderHiddenSize = 8, EncoderType = PTuningEncoderType.Lstm },
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    [Theory]
    [MemberData(nameof(Methods))]
    public void Cached_decoding_and_generation_equal_the_uncached_passes(string @case, string method)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        var config = ConfigFor(method);
        PeftInjector.Inject(model, config);
        var virtualTokens = config is PrefixTuningConfig ? 0 : config.NumVirtualTokens; // logits of virtual positions
        var ids = InputIds(@case);
        using var noGrad = no_grad();
        var t = ids.shape[1];
        var full = model.Forward(ids);
        Assert.Equal(virtualTokens + t, full.shape[1]);

        using (var cache = model.NewCache())
        {
            const int prompt = 5;
            var first = model.Forward(ids.narrow(1, 0, prompt), cache: cache);
            LogitsAssert.Close(first, full.narrow(1, 0, virtualTokens + prompt), what: $"{method}: first pass");
            Assert.Equal(config.NumVirtualTokens, cache.VirtualTokens);
            Assert.Equal(config.NumVirtualTokens + prompt, cache.Length);
            for (var i = prompt; i < t; i++)
                LogitsAssert.Close(model.Forward(ids.narrow(1, i, 1), cache: cache), full.narrow(1, virtualTokens + i, 1), what: $"{method}: position {i}");
        }

        // A left-padded batch through the generator: with the cache and without it, the same tokens.
        IReadOnlyList<int>[] prompts = [[5, 17, 42, 8, 99, 3], [7, 1, 250]];
        var cached = TokenGenerator.Generate(model, prompts, new GenerationOptions { MaxNewTokens = 8 });
        var uncached = TokenGenerator.Generate(model, prompts, new GenerationOptions { MaxNewTokens = 8, UseCache = false });
        Assert.Equal(uncached.Select(s => s.Tokens), cached.Select(s => s.Tokens));
        // The short prompt, padded in the batch, generates what it generates alone.
        Assert.Equal(TokenGenerator.Generate(model, [prompts[1]], new GenerationOptions { MaxNewTokens = 8 })[0].Tokens, cached[1].Tokens);
    }

    [Theory]
    [InlineData("prefix")]
    [InlineData("ptuning-v2")]
    [InlineData("prompt")]
    [InlineData("ptuning")]
    [InlineData("ptuning-lstm")]
    public void Each_method_trains_the_loss_falls_and_only_the_encoder_changes(string method)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var model = LlamaForCausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var config = ConfigFor(method);
        PeftInjector.Inject(model, config);
        var baseWeight = model.Model.Layers[0].SelfAttn.QProj.Weight.clone();
        var data = InstructionData();
        var dir = Fixtures.TempDirectory();
        using (var trainer = new Trainer(model, new TrainingOptions { LearningRate = method == "prompt" ? 0.1 : 0.03, MaxSteps = 20, BatchSize = 4, SaveSteps = 0, LoggingSteps = 5, Scheduler = SchedulerType.Constant }, dir, data, adapterConfig: config))
        {
            Assert.All(trainer.TrainableParameters, p => Assert.StartsWith("prompt_encoder.adapters.default.", p.Name, StringComparison.Ordinal));
            var result = trainer.Train();
            var losses = result.LogHistory.Where(e => e.Loss is not null).Select(e => e.Loss!.Value).ToList();
            // A random 2-layer model bounds what virtual tokens can do (its logits span ~1.3 nats); they still steer it.
            Assert.True(losses[^1] < losses[0] - 0.15, $"{method}: loss {losses[0]} → {losses[^1]}");
        }

        Assert.True(model.Model.Layers[0].SelfAttn.QProj.Weight.equal(baseWeight).all().item<bool>());
        // The trained adapter reloads (in its saved form) to the trained model's logits.
        using var reloaded = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        Assert.Equal(config.PeftType, PeftAdapter.Load(reloaded, dir).PeftType);
        using var noGrad = no_grad();
        model.eval();
        var ids = tensor(data[0].InputIds.Select(i => (long)i).ToArray(), [1, data[0].InputIds.Length]);
        LogitsAssert.Close(reloaded.Forward(ids), model.Forward(ids), what: $"{method}: reloaded");
    }

    /// <summary>No tensor outlives a training step or a generation: the live-tensor count is flat from the third
    /// step on (the optimizer state exists by then), and generating leaves it where it was.</summary>
    [Theory]
    [InlineData("prefix")]        // key/value prefixes through the cache, with the projection
    [InlineData("ptuning-lstm")]  // virtual token embeddings, from an LSTM encoder
    [InlineData("houlsby")]       // bottleneck adapters in both slots
    public void Native_memory_stays_flat_over_steps_and_generation(string method)
    {
        manual_seed(3);
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftConfig config = method == "houlsby" ? BottleneckConfig.Houlsby(size: 4) : ConfigFor(method);
        PeftInjector.Inject(model, config);
        var live = new List<long>();
        using (var trainer = new Trainer(model, new TrainingOptions { LearningRate = 0.01, MaxSteps = 8, BatchSize = 4, SaveSteps = 0, LoggingSteps = 4, Scheduler = SchedulerType.Constant }, Fixtures.TempDirectory(), InstructionData(), adapterConfig: config))
        {
            trainer.StepCompleted += _ => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            trainer.Train();
        }

        Assert.Equal(8, live.Count);
        Assert.All(live.Skip(2), n => Assert.Equal(live[2], n));

        model.eval();
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        TokenGenerator.Generate(model, [[5, 17, 42, 8], [7, 1]], new GenerationOptions { MaxNewTokens = 6 });
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    /// <summary>Four "instructions" (8 prompt tokens, label -100) answered with the same 8 tokens: something virtual
    /// tokens can learn on a random model.</summary>
    internal static List<Lora.Data.TokenizedExample> InstructionData() => Enumerable.Range(0, 4)
        .Select(r => new Lora.Data.TokenizedExample(
            Enumerable.Range(0, 8).Select(t => (r * 37 + t * 11) % 300).Concat(Enumerable.Repeat(7, 8)).ToArray(),
            Enumerable.Repeat(-100, 8).Concat(Enumerable.Repeat(7, 8)).ToArray()))
        .ToList();

    /// <summary>A LoRA adapter on the layers and a prompt-tuning adapter on the model act in one pass (each host's
    /// first adapter is active): the logits equal those of the base with the LoRA adapter merged into its weights
    /// and the same virtual tokens in front.</summary>
    [Fact]
    public void A_lora_adapter_and_a_prompt_tuning_adapter_act_together()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var lora = new LoraConfig { R = 4, LoraAlpha = 8, InitLoraWeights = "false", TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) };
        var prompt = new PromptTuningConfig { NumVirtualTokens = 3 };
        PeftInjector.Inject(model, lora);
        PeftInjector.Inject(model, prompt, "prompt");
        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, lora);
        PeftAdapter.Save(model, dir, prompt, "prompt");
        using var noGrad = no_grad();
        var ids = InputIds("llama_qv");
        var both = model.Forward(ids);
        Assert.Equal(3 + ids.shape[1], both.shape[1]);

        using var merged = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftAdapter.Load(merged, dir);
        merged.MergeAndUnload();
        PeftAdapter.Load(merged, PeftAdapter.DirectoryFor(dir, "prompt"), "prompt");
        LogitsAssert.Close(merged.Forward(ids), both, what: "LoRA merged + prompt tuning vs both adapters");

        // Without the LoRA adapter the logits differ: the pass above used both.
        using var promptOnly = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftAdapter.Load(promptOnly, PeftAdapter.DirectoryFor(dir, "prompt"), "prompt");
        Assert.True((promptOnly.Forward(ids) - both).abs().max().item<float>() > 1e-3f);
    }

    [Fact]
    public void A_reparameterised_encoder_resumes_from_its_state_file_and_not_from_prompt_embeddings_alone()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        var config = ConfigFor("ptuning");
        PeftInjector.Inject(model, config);
        var dir = Fixtures.TempDirectory();
        PeftAdapter.Save(model, dir, config);
        Assert.True(File.Exists(Path.Combine(dir, PromptLearningFiles.EncoderStateFileName)));

        // Training form (MLP present), filled from the directory: the encoder's whole state comes back.
        manual_seed(6);
        using var resumed = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftInjector.Inject(resumed, config);
        PeftAdapter.LoadWeights(resumed, dir);
        var a = model.named_parameters().Where(p => p.name.StartsWith("prompt_encoder", StringComparison.Ordinal)).ToList();
        var b = resumed.named_parameters().Where(p => p.name.StartsWith("prompt_encoder", StringComparison.Ordinal)).ToDictionary(p => p.name, p => p.parameter);
        Assert.Contains(a, p => p.name.Contains(".mlp_head.", StringComparison.Ordinal));
        Assert.All(a, p => Assert.True(p.parameter.equal(b[p.name]).all().item<bool>(), p.name));

        File.Delete(Path.Combine(dir, PromptLearningFiles.EncoderStateFileName));
        var e = Assert.Throws<LoraException>(() => PeftAdapter.LoadWeights(resumed, dir));
        Assert.Contains(PromptLearningFiles.EncoderStateFileName, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prompt_tuning_text_init_copies_the_word_embeddings_of_the_text_repeated()
    {
        using var scope = NewDisposeScope();
        var modelDir = Fixtures.TempDirectory();
        foreach (var f in Directory.GetFiles(Fixtures.Peft("llama_qv", "base")))
            File.Copy(f, Path.Combine(modelDir, Path.GetFileName(f)));
        foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Root, "tokenizers", "bytes")))
            File.Copy(f, Path.Combine(modelDir, Path.GetFileName(f)));
        using var model = LlamaForCausalLM.FromPretrained(modelDir);
        PeftInjector.Inject(model, new PromptTuningConfig { NumVirtualTokens = 7, PromptTuningInit = PromptTuningInit.Text, PromptTuningInitText = "abc" });
        var ids = Lora.Tokenization.HfTokenizer.Load(modelDir).Encode("abc");
        var table = ((PromptEmbedding)((PromptHost)model.ActivePrompt!).Adapter("default")).Table;
        for (var i = 0; i < 7; i++)
            Assert.True(table[i].equal(model.Model.EmbedTokens.Weight[ids[i % ids.Length]]).all().item<bool>(), $"row {i}");
        var saved = (PromptTuningConfig)PeftAdapter.ForSaving(model, new PromptTuningConfig { NumVirtualTokens = 7, PromptTuningInit = PromptTuningInit.Text, PromptTuningInitText = "abc" });
        Assert.Equal(Path.GetFullPath(modelDir), saved.TokenizerNameOrPath);
    }

    [Fact]
    public void Misuse_is_refused_with_the_reason()
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_prefix", "base"));
        PeftAdapter.Load(model, Fixtures.Peft("llama_prefix", "adapter"));
        Assert.Contains("cannot be merged", Assert.Throws<LoraException>(() => model.MergeAdapters()).Message, StringComparison.Ordinal);
        model.GradientCheckpointing = true;
        model.train();
        using (var ids = tensor(new long[] { 1, 2, 3 }, [1, 3]))
            Assert.Contains("gradient checkpointing", Assert.Throws<LoraException>(() => model.Forward(ids)).Message, StringComparison.Ordinal);
        model.GradientCheckpointing = false;
        model.eval();

        using var other = CausalLM.FromPretrained(Fixtures.Peft("gpt2_c_attn", "base"));
        var e = Assert.Throws<LoraException>(() => PeftAdapter.Load(other, Fixtures.Peft("llama_prefix", "adapter")));
        Assert.Contains("token_dim", e.Message, StringComparison.Ordinal);
        Assert.Empty(other.AdaptedLayers());
    }
}
