using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Data;
using Lora.Models;
using Lora.Runtime.Tests.Models;
using Lora.SafeTensors;
using Lora.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Training;

/// <summary>The trainer reproduces reference traces from transformers + PEFT + torch.optim.AdamW step by step.</summary>
public class TraceParityTests(ITestOutputHelper output)
{
    /// <summary>
    /// fixtures/trainer/train_trace (generate/train_trace.py): completion-only labels, 2 micro-batches of 2
    /// accumulated per step (token-exact normalisation), AdamW lr 1e-3 wd 0.01, linear schedule with 2 warmup steps
    /// from 0, clip 1.0, 6 steps. loss, grad_norm and lr within 1e-4 relative; final adapter within 1e-4.
    /// </summary>
    [Fact]
    public void Training_trace_matches_reference_loop()
    {
        var trace = TrainerFixtures.Json(TrainerFixtures.TrainTrace("trace.json"));
        var examples = TrainerFixtures.Examples(TrainerFixtures.TrainTrace("batch.safetensors"), labelsFromFile: true);
        var outDir = Fixtures.TempDirectory();
        using var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"));
        var config = PeftAdapter.Load<LoraConfig>(model, TrainerFixtures.TrainTrace("adapter_init"));
        var options = new TrainingOptions
        {
            LearningRate = 1e-3,
            WeightDecay = 0.01,
            Scheduler = SchedulerType.Linear,
            WarmupSteps = 2,
            MaxSteps = 6,
            BatchSize = 2,
            GradientAccumulationSteps = 2,
            MaxGradNorm = 1.0,
            Sampling = SamplingStrategy.Sequential,
            LoggingSteps = 1,
            SaveSteps = 0,
        };
        using var trainer = new Trainer(model, options, outDir, examples, adapterConfig: config);
        var result = trainer.Train();

        var expected = trace.GetProperty("trace").EnumerateArray().ToList();
        var rows = result.LogHistory.Where(r => !r.IsEval).ToList();
        Assert.Equal(expected.Count, rows.Count);
        double worstLoss = 0, worstNorm = 0;
        for (var i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            Assert.Equal(e.GetProperty("step").GetInt32(), rows[i].Step);
            TrainerFixtures.Relative(e.GetProperty("loss").GetDouble(), rows[i].Loss!.Value, 1e-4, $"step {i + 1} loss");
            TrainerFixtures.Relative(e.GetProperty("grad_norm").GetDouble(), rows[i].GradNorm!.Value, 1e-4, $"step {i + 1} grad_norm");
            TrainerFixtures.Relative(e.GetProperty("lr").GetDouble(), rows[i].LearningRate!.Value, 1e-12, $"step {i + 1} lr");
            worstLoss = Math.Max(worstLoss, Math.Abs(rows[i].Loss!.Value / e.GetProperty("loss").GetDouble() - 1));
            worstNorm = Math.Max(worstNorm, Math.Abs(rows[i].GradNorm!.Value / e.GetProperty("grad_norm").GetDouble() - 1));
        }

        var worstWeight = TrainerFixtures.AdaptersClose(outDir, TrainerFixtures.TrainTrace("adapter_final"), 1e-4);
        output.WriteLine($"train_trace: worst relative error loss {worstLoss:G3}, grad_norm {worstNorm:G3}, adapter {worstWeight:G3}");
    }

    /// <summary>
    /// The core fixtures (generate/peft_core.py): 5 AdamW steps (lr 1e-3, wd 0, no clipping, constant rate) on
    /// labels = input_ids from <c>adapter/</c>: the losses match, and the result equals <c>adapter_trained</c> and
    /// gives <c>trained_logits</c>.
    /// </summary>
    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    public void Core_training_trace_matches_peft(string @case)
    {
        var trace = TrainerFixtures.Json(Path.Combine(Fixtures.Peft(@case), "trace.json"));
        var examples = TrainerFixtures.Examples(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"), labelsFromFile: false);
        var outDir = Fixtures.TempDirectory();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        var config = PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft(@case, "adapter"));
        var options = new TrainingOptions
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
        };
        using var trainer = new Trainer(model, options, outDir, examples, adapterConfig: config);
        var result = trainer.Train();

        var losses = trace.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToList();
        var rows = result.LogHistory.Where(r => !r.IsEval).ToList();
        Assert.Equal(losses.Count, rows.Count);
        for (var i = 0; i < losses.Count; i++)
            TrainerFixtures.Relative(losses[i], rows[i].Loss!.Value, 1e-4, $"{@case} step {i + 1} loss");
        var worst = TrainerFixtures.AdaptersClose(outDir, Fixtures.Peft(@case, "adapter_trained"), 1e-4);
        output.WriteLine($"{@case}: worst relative adapter error {worst:G3}");

        using var scope = NewDisposeScope();
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        model.eval();
        using var noGrad = no_grad();
        LogitsAssert.Close(model.Forward(expected.Load("input_ids")), expected.Load("trained_logits"), what: @case);
    }
}
