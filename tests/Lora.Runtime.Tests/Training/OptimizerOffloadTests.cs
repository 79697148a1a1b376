using Lora.Data;
using Lora.Models;
using Lora.Peft;
using Lora.Quantization;
using Lora.Training;
using Lora.Tuners.LoRA;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Training;

/// <summary>Optimizer state on the CPU (<see cref="TrainingOptions.OptimizerOffload"/>) computes the same updates as
/// on the device: the same fp32 AdamW on the same values, only in other memory.</summary>
[Collection(TrainerCollection.Name)]
public class OptimizerOffloadTests
{
    private static TrainingOptions Options(bool offload) => new()
    {
        LearningRate = 5e-3,
        WeightDecay = 0.01,
        MaxSteps = 4,
        BatchSize = 2,
        LoggingSteps = 1,
        SaveSteps = 2,
        Seed = 3,
        MaxGradNorm = 0.3,
        Scheduler = SchedulerType.Constant, // the resume test stops a run early: the schedule must not depend on its length
        Sampling = SamplingStrategy.Random,
        OptimizerOffload = offload,
    };

    private static (List<double> Losses, string Dir) Run(bool offload, QuantizationConfig? quantization, string? resumeFrom = null, int maxSteps = 4)
    {
        var data = TrainerFixtures.Examples(TrainerFixtures.TrainTrace("batch.safetensors"), labelsFromFile: true);
        using var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"), quantization: quantization);
        var config = new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = 0, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) };
        torch.manual_seed(2);
        PeftInjector.Inject(model, config with { InitLoraWeights = "false" });
        var dir = resumeFrom is null ? Fixtures.TempDirectory() : Path.GetDirectoryName(resumeFrom)!;
        using var trainer = new Trainer(model, Options(offload) with { MaxSteps = maxSteps }, dir, data, adapterConfig: config);
        var result = trainer.Train(resumeFrom);
        return (result.LogHistory.Where(e => e.Loss is not null).Select(e => e.Loss!.Value).ToList(), dir);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Offloaded_optimizer_state_gives_the_same_run(bool quantized)
    {
        var quantization = quantized ? QuantizationConfig.QLoRA with { ComputeDType = ScalarType.Float32 } : null;
        var (onDevice, deviceDir) = Run(offload: false, quantization);
        var (offloaded, hostDir) = Run(offload: true, quantization);
        Assert.Equal(onDevice, offloaded);
        Assert.Equal(0, TrainerFixtures.AdaptersClose(hostDir, deviceDir, rtol: 0));
    }

    [Fact]
    public void An_offloaded_run_resumes_from_its_checkpoint()
    {
        var (straight, straightDir) = Run(offload: true, null);
        var (_, firstDir) = Run(offload: true, null, maxSteps: 2);
        var (resumed, _) = Run(offload: true, null, resumeFrom: Path.Combine(firstDir, "checkpoint-2"));
        Assert.Equal(straight[2..], resumed[^2..]);
        Assert.Equal(0, TrainerFixtures.AdaptersClose(firstDir, straightDir, rtol: 0));
    }
}
