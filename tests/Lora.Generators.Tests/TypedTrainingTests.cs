using Lora.Data;
using Lora.Models;
using Lora.Runtime.Tests.Models;
using Lora.SafeTensors;
using Lora.Data.Preference;
using Lora.Training;
using Lora.Training.Objectives.Dpo;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generators.Tests;

/// <summary>The generated typed training step (<c>TrainLora</c>) reproduces PEFT's 5 AdamW steps on the llama_qv fixture
/// (generate/peft_core.py: lr 1e-3, weight decay 0, labels = input_ids, no clipping): same losses as trace.json and
/// logits equal to <c>trained_logits</c>; the adapter it writes is a PEFT directory.</summary>
[Collection(TorchCollection.Name)]
public class TypedTrainingTests
{
    private static string Peft(string @case, string part = "") => Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", @case, part);

    [Fact]
    public void TrainLora_reproduces_the_peft_training_trace()
    {
        using var scope = NewDisposeScope();
        using var expected = SafeTensorsFile.Open(Path.Combine(Peft("llama_qv"), "expected.safetensors"));
        var ids = expected.Load("input_ids");
        var examples = Enumerable.Range(0, (int)ids.shape[0])
            .Select(r => TokenizedExample.FromIds(ids[r].data<long>().Select(v => (int)v).ToArray()))
            .ToList();

        using var model = LlamaQvLora.FromPretrained(Peft("llama_qv", "base"));
        model.LoadAdapter(Peft("llama_qv", "adapter"));
        var outDir = Path.Combine(Path.GetTempPath(), "lora-gen-tests", Guid.NewGuid().ToString("N"));
        var result = model.TrainAdapter(examples, new TrainingOptions
        {
            LearningRate = 1e-3,
            WeightDecay = 0,
            Scheduler = SchedulerType.Constant,
            MaxSteps = 5,
            BatchSize = examples.Count,
            MaxGradNorm = 0,
            Sampling = SamplingStrategy.Sequential,
            LoggingSteps = 1,
            SaveSteps = 0,
        }, outDir);

        using var trace = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(Peft("llama_qv"), "trace.json")));
        var losses = trace.RootElement.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToList();
        var logged = result.LogHistory.Where(r => !r.IsEval).Select(r => r.Loss!.Value).ToList();
        Assert.Equal(losses.Count, logged.Count);
        for (var i = 0; i < losses.Count; i++)
            Assert.True(Math.Abs(logged[i] - losses[i]) <= 1e-4 * Math.Abs(losses[i]), $"step {i + 1}: {logged[i]} vs {losses[i]}");

        model.eval();
        using (no_grad())
            LogitsAssert.Close(model.Forward(ids), expected.Load("trained_logits"), what: "TrainLora");
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
        Assert.Equal(["q_proj", "v_proj"], Lora.Peft.PeftConfigFile.Read<Lora.Tuners.LoRA.LoraConfig>(outDir).TargetModules!.Names!.Order(StringComparer.Ordinal));
    }

    /// <summary>A [Lora] model trains on an alignment objective through the same entry point: DPO with the reference =
    /// the model with its adapters disabled. The generated plan's LoRA starts at B = 0, so step 1 is TRL's ln 2 with
    /// accuracy 0, and the adapter written is the plan's.</summary>
    [Fact]
    public void TrainAdapter_runs_an_alignment_objective_on_a_generated_model()
    {
        using var model = LlamaQvLora.FromPretrained(Peft("llama_qv", "base"));
        List<PreferenceExample> pairs =
        [
            new([256, 81, 58, 97], [98, 99, 257], [100, 257]),
            new([256, 81, 58], [101, 102, 103, 104, 257], [105, 106, 257]),
        ];
        var outDir = Path.Combine(Path.GetTempPath(), "lora-gen-tests", Guid.NewGuid().ToString("N"));
        var result = model.TrainAdapter(new DpoObjective(pairs, padTokenId: 258), new TrainingOptions
        {
            LearningRate = 1e-2,
            MaxSteps = 3,
            BatchSize = 2,
            LoggingSteps = 1,
            SaveSteps = 0,
        }, outDir);

        var rows = result.LogHistory.Where(r => !r.IsEval).ToList();
        Assert.Equal(Math.Log(2), rows[0].Loss!.Value, 6);
        Assert.Equal(0.0, (double)rows[0].Metrics!["rewards/accuracies"]);
        Assert.True((double)rows[^1].Metrics!["rewards/margins"] > 0, $"margins {rows[^1].Metrics!["rewards/margins"]}");
        Assert.Equal(["q_proj", "v_proj"], Lora.Peft.PeftConfigFile.Read<Lora.Tuners.LoRA.LoraConfig>(outDir).TargetModules!.Names!.Order(StringComparer.Ordinal));
    }
}
