using Lora.Data;
using Lora.Models;
using Lora.Peft;
using Lora.Runtime.Tests.Models;
using Lora.SafeTensors;
using Lora.Training;
using Lora.Tuners.Bottleneck;
using Lora.Tuners.PrefixTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generators.Tests;

[PrefixTuning(VirtualTokens = 4)]
public partial class LlamaPrefixPlan : LlamaForCausalLM
{
}

[PrefixTuning(VirtualTokens = 4, Projection = true, EncoderHiddenSize = 16)]
public partial class LlamaPrefixProjectionPlan : LlamaForCausalLM
{
}

[BottleneckAdapter(Size = 8)]
public partial class LlamaPfeifferPlan : LlamaForCausalLM
{
}

[PromptTuning(VirtualTokens = 3)]
public partial class LlamaPromptPlan : LlamaForCausalLM
{
}

[PTuning(VirtualTokens = 4, EncoderHiddenSize = 16)]
public partial class LlamaPTuningPlan : LlamaForCausalLM
{
}

[BottleneckAdapter(Size = 8, Placement = BottleneckPlacement.Houlsby)]
public partial class LlamaHoulsbyPlan : LlamaForCausalLM
{
}

/// <summary>Prompt-learning and bottleneck plans through the generator: PEFT's prefix/prompt files load into them and
/// give PEFT's logits, injection equals the dynamic path, saving writes the method's format, and they train.</summary>
[Collection(TorchCollection.Name)]
public class PromptAndBottleneckPlanTests
{
    private static string Peft(string @case, string part = "") => Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", @case, part);

    private static string Temp() => Path.Combine(Path.GetTempPath(), "lora-generator-tests", Guid.NewGuid().ToString("N"));

    [Theory]
    [InlineData("llama_prefix")]
    [InlineData("llama_prompt")]
    public void Peft_prompt_learning_files_load_into_the_plan_and_give_peft_logits(string @case)
    {
        using var scope = NewDisposeScope();
        using CausalLM model = @case == "llama_prefix" ? LlamaPrefixPlan.FromPretrained(Peft(@case, "base")) : LlamaPromptPlan.FromPretrained(Peft(@case, "base"));
        Assert.Empty(((IPeftModel)model).AdapterTargets());
        ((IPeftModel)model).LoadAdapter(Peft(@case, "adapter"));
        using var expected = SafeTensorsFile.Open(Peft(@case, "expected.safetensors"));
        using var noGrad = no_grad();
        LogitsAssert.Close(model.Forward(expected.Load("input_ids")), expected.Load("adapter_logits"), what: $"[{@case}] plan vs PEFT");

        // Saved through the plan: PEFT's file, which the dynamic path reloads to the same logits.
        var dir = Temp();
        ((IPeftModel)model).SaveAdapter(dir);
        using var fresh = CausalLM.FromPretrained(Peft(@case, "base"));
        PeftAdapter.Load(fresh, dir);
        var ids = expected.Load("input_ids");
        Assert.True(fresh.Forward(ids).equal(model.Forward(ids)).all().item<bool>());
    }

    [Fact]
    public void Typed_injection_equals_the_dynamic_path()
    {
        using var scope = NewDisposeScope();
        void Same(CausalLM generated, PeftConfig plan, int expectedParameters)
        {
            using var dynamic = CausalLM.FromPretrained(Peft("llama_qv", "base"));
            PeftInjector.Inject(dynamic, plan);
            var a = generated.AdapterParameters().Select(p => (p.ModelName, string.Join("x", p.Parameter.shape))).Order().ToList();
            Assert.Equal(dynamic.AdapterParameters().Select(p => (p.ModelName, string.Join("x", p.Parameter.shape))).Order(), a);
            Assert.Equal(expectedParameters, a.Count);
        }

        using (var m = LlamaPrefixPlan.FromPretrained(Peft("llama_qv", "base")))
            Same(m, LlamaPrefixPlan.Plan, 1);
        using (var m = LlamaPTuningPlan.FromPretrained(Peft("llama_qv", "base")))
            Same(m, LlamaPTuningPlan.Plan, 7);
        using (var m = LlamaHoulsbyPlan.FromPretrained(Peft("llama_qv", "base")))
        {
            Same(m, LlamaHoulsbyPlan.Plan, 16);
            Assert.Equal(["model.layers.0.attention_adapters", "model.layers.0.output_adapters", "model.layers.1.attention_adapters", "model.layers.1.output_adapters"], m.AdapterTargets().Select(t => t.Path));
        }
    }

    [Fact]
    public void A_file_of_another_method_is_refused_by_the_plan()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaPromptPlan.FromPretrained(Peft("llama_prefix", "base"));
        var e = Assert.Throws<LoraException>(() => model.LoadAdapter(Peft("llama_prefix", "adapter")));
        Assert.Contains("peft_type = PREFIX_TUNING (plan: PROMPT_TUNING)", e.Message, StringComparison.Ordinal);
    }

    /// <summary>The plans the test below does not train: each trains through its generated members (the loss falls,
    /// the base stays frozen) and saves a file the dynamic path reloads to the trained logits.</summary>
    [Theory]
    [InlineData("ptuning-v2", 0.03)]
    [InlineData("prefix", 0.03)]
    [InlineData("prompt", 0.1)]
    [InlineData("pfeiffer", 0.01)]
    public void Prefix_prompt_and_pfeiffer_plans_train_through_the_attribute(string plan, double learningRate)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var data = Enumerable.Range(0, 4)
            .Select(r => new TokenizedExample(
                Enumerable.Range(0, 8).Select(t => (r * 37 + t * 11) % 300).Concat(Enumerable.Repeat(7, 8)).ToArray(),
                Enumerable.Repeat(-100, 8).Concat(Enumerable.Repeat(7, 8)).ToArray()))
            .ToList();
        var options = new TrainingOptions { LearningRate = learningRate, MaxSteps = 12, BatchSize = 4, SaveSteps = 0, LoggingSteps = 4, Scheduler = SchedulerType.Constant };
        var basePath = Peft("llama_qv", "base");
        using CausalLM model = plan switch
        {
            "ptuning-v2" => LlamaPrefixPlan.FromPretrained(basePath),
            "prefix" => LlamaPrefixProjectionPlan.FromPretrained(basePath),
            "prompt" => LlamaPromptPlan.FromPretrained(basePath),
            _ => LlamaPfeifferPlan.FromPretrained(basePath),
        };
        var peft = (IPeftModel)model;
        var qProj = ((LlamaForCausalLM)model).Model.Layers[0].SelfAttn.QProj.Weight.clone();
        var dir = Temp();
        var losses = peft.TrainAdapter(data, options, dir).LogHistory.Where(e => e.Loss is not null).Select(e => e.Loss!.Value).ToList();
        Assert.True(losses[^1] < losses[0] - 0.1, $"{plan}: {losses[0]} → {losses[^1]}");
        Assert.True(((LlamaForCausalLM)model).Model.Layers[0].SelfAttn.QProj.Weight.equal(qProj).all().item<bool>());

        var expectedType = plan switch { "prompt" => "PROMPT_TUNING", "pfeiffer" => BottleneckMethod.PeftTypeName, _ => "PREFIX_TUNING" };
        Assert.Equal(expectedType, PeftConfigFile.Read(dir).PeftType);
        if (plan == "prefix")
            Assert.True(PeftConfigFile.Read<PrefixTuningConfig>(dir).PrefixProjection);
        using var fresh = CausalLM.FromPretrained(basePath);
        PeftAdapter.Load(fresh, dir);
        using var ids = tensor(data[1].InputIds.Select(i => (long)i).ToArray(), [1, 16]);
        using var noGrad = no_grad();
        model.eval();
        LogitsAssert.Close(fresh.Forward(ids), model.Forward(ids), what: $"{plan}: reloaded vs trained");
    }

    [Fact]
    public void P_tuning_and_bottleneck_plans_train_and_save_their_formats()
    {
        using var scope = NewDisposeScope();
        var data = Enumerable.Range(0, 4)
            .Select(r => new TokenizedExample(
                Enumerable.Range(0, 8).Select(t => (r * 37 + t * 11) % 300).Concat(Enumerable.Repeat(7, 8)).ToArray(),
                Enumerable.Repeat(-100, 8).Concat(Enumerable.Repeat(7, 8)).ToArray()))
            .ToList();
        var options = new TrainingOptions { LearningRate = 0.03, MaxSteps = 12, BatchSize = 4, SaveSteps = 0, LoggingSteps = 4, Scheduler = SchedulerType.Constant };

        manual_seed(7);
        using (var ptuning = LlamaPTuningPlan.FromPretrained(Peft("llama_qv", "base")))
        {
            var dir = Temp();
            var losses = ptuning.TrainAdapter(data, options, dir).LogHistory.Where(e => e.Loss is not null).Select(e => e.Loss!.Value).ToList();
            Assert.True(losses[^1] < losses[0], $"P-tuning: {losses[0]} → {losses[^1]}");
            Assert.True(File.Exists(Path.Combine(dir, PeftAdapter.WeightsFileName)));
            Assert.True(File.Exists(Path.Combine(dir, PromptLearningFiles.EncoderStateFileName)));
            Assert.Equal("P_TUNING", PeftConfigFile.Read(dir).PeftType);
        }

        manual_seed(7);
        using (var houlsby = LlamaHoulsbyPlan.FromPretrained(Peft("llama_qv", "base")))
        {
            var dir = Temp();
            var losses = houlsby.TrainAdapter(data, options with { LearningRate = 0.01 }, dir).LogHistory.Where(e => e.Loss is not null).Select(e => e.Loss!.Value).ToList();
            Assert.True(losses[^1] < losses[0] - 0.2, $"Houlsby: {losses[0]} → {losses[^1]}");
            Assert.True(File.Exists(Path.Combine(dir, AdapterHubFormat.WeightsFileName)));
            Assert.True(PeftConfigFile.Read<BottleneckConfig>(dir).MhAdapter);
            using var fresh = LlamaHoulsbyPlan.FromPretrained(Peft("llama_qv", "base"));
            fresh.LoadAdapter(dir);
            using var ids = tensor(data[0].InputIds.Select(i => (long)i).ToArray(), [1, 16]);
            using var noGrad = no_grad();
            houlsby.eval();
            Assert.True(fresh.Forward(ids).equal(houlsby.Forward(ids)).all().item<bool>());
        }
    }
}
