using Lora.Generation;
using Lora.Models;
using Lora.Peft;
using Lora.Training;
using Lora.Tuners.LoRA;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Training;

/// <summary>
/// The bf16 code path (the CUDA default) run on the CPU, against fp32, within stated tolerances: bf16 keeps 8 bits of
/// mantissa (relative rounding 2⁻⁹ ≈ 0.2% per value), so the loss of a short LoRA run stays within 2% of fp32's and
/// the trained adapter (fp32 weights, fp32 optimizer) within 15% of fp32's norm of change (measured 9%: Adam normalises
/// each coordinate, so rounding in small gradients shows up in the update); greedy decoding in bf16 picks
/// tokens whose fp32 logit is within 0.15 of the fp32 maximum (ties at bf16 resolution may flip, a wrong pick may not).
/// </summary>
[Collection(TrainerCollection.Name)]
public class Bf16Tests(ITestOutputHelper output)
{
    private static (CausalLM Model, LoraConfig Config) Model(ScalarType dtype)
    {
        var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"), dtype);
        var config = PeftAdapter.Load<LoraConfig>(model, TrainerFixtures.TrainTrace("adapter_init"));
        return (model, config);
    }

    [Fact]
    public void Bf16_training_on_the_cpu_follows_fp32_within_tolerance()
    {
        var examples = TrainerFixtures.Examples(TrainerFixtures.TrainTrace("batch.safetensors"), labelsFromFile: true);
        var options = new TrainingOptions
        {
            LearningRate = 1e-3, MaxSteps = 4, BatchSize = 2, GradientAccumulationSteps = 2, MaxGradNorm = 1.0,
            Sampling = Lora.Data.SamplingStrategy.Sequential, LoggingSteps = 1, SaveSteps = 0,
        };
        (List<double> Losses, Dictionary<string, Tensor> Adapter, Dictionary<string, Tensor> Initial) Run(ScalarType dtype)
        {
            var (model, config) = Model(dtype);
            using (model)
            {
                var initial = model.AdapterParameters().ToDictionary(p => p.HostPath + "." + p.Name, p => p.Parameter.detach().clone().DetachFromDisposeScope());
                using var trainer = new Trainer(model, options with { Bf16 = dtype == ScalarType.BFloat16 }, Fixtures.TempDirectory(), examples, adapterConfig: config);
                Assert.All(trainer.TrainableParameters, p => Assert.Equal(ScalarType.Float32, p.Parameter.dtype)); // adapters stay fp32
                var result = trainer.Train();
                var adapter = model.AdapterParameters().ToDictionary(p => p.HostPath + "." + p.Name, p => p.Parameter.detach().clone().DetachFromDisposeScope());
                return (result.LogHistory.Where(r => !r.IsEval).Select(r => r.Loss!.Value).ToList(), adapter, initial);
            }
        }

        var fp32 = Run(ScalarType.Float32);
        var bf16 = Run(ScalarType.BFloat16);
        double worstLoss = 0, worstUpdate = 0;
        for (var i = 0; i < fp32.Losses.Count; i++)
            worstLoss = Math.Max(worstLoss, Math.Abs(bf16.Losses[i] / fp32.Losses[i] - 1));
        foreach (var (name, w) in fp32.Adapter)
        {
            var change = (w - fp32.Initial[name]).norm().item<float>();
            worstUpdate = Math.Max(worstUpdate, (bf16.Adapter[name] - w).norm().item<float>() / change);
        }

        output.WriteLine($"bf16 vs fp32: worst relative loss difference {worstLoss:G3}, worst adapter-update difference {worstUpdate:G3}");
        Assert.True(worstLoss < 0.02, $"loss differs by {worstLoss:G3} (> 2%)");
        Assert.True(worstUpdate < 0.15, $"adapter update differs by {worstUpdate:G3} of its size (> 15%)");
    }

    [Fact]
    public void Bf16_greedy_decoding_picks_near_argmax_tokens()
    {
        var (fp32, _) = Model(ScalarType.Float32);
        var (bf16, _) = Model(ScalarType.BFloat16);
        using (fp32)
        using (bf16)
        {
            IReadOnlyList<int> prompt = [1, 5, 17, 42, 8];
            var tokens = TokenGenerator.Generate(bf16, [prompt], new GenerationOptions { MaxNewTokens = 12 })[0].Tokens;
            Assert.Equal(12, tokens.Count);
            using var noGrad = no_grad();
            var sequence = prompt.Concat(tokens).Select(t => (long)t).ToArray();
            using var logits = fp32.Forward(tensor(sequence, [1, sequence.Length]))[0]; // (T, V), fp32 teacher forcing
            double worst = 0;
            for (var i = 0; i < tokens.Count; i++)
            {
                using var row = logits[prompt.Count - 1 + i];
                worst = Math.Max(worst, row.max().item<float>() - row[tokens[i]].item<float>());
            }

            output.WriteLine($"bf16 greedy tokens: worst fp32 logit gap to the argmax {worst:G3}");
            Assert.True(worst <= 0.15, $"a bf16 greedy token is {worst:G3} below the fp32 argmax logit");
        }
    }

    [Fact]
    public void A_bf16_full_fine_tuning_run_resumes_exactly_from_its_fp32_master_weights()
    {
        var data = TrainerFixtures.Examples(TrainerFixtures.TrainTrace("batch.safetensors"), labelsFromFile: true);
        var options = new TrainingOptions
        {
            Mode = TrainingMode.Full, LearningRate = 3e-4, MaxSteps = 6, BatchSize = 2, Seed = 5, SaveSteps = 2,
            Sampling = Lora.Data.SamplingStrategy.Random, LoggingSteps = 1,
        };
        CausalLM Bf16Model() => CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"), ScalarType.BFloat16);
        Dictionary<string, Tensor> Weights(CausalLM model) =>
            model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope());

        var straightDir = Fixtures.TempDirectory();
        List<double> straightLosses;
        Dictionary<string, Tensor> straightWeights;
        using (var model = Bf16Model())
        using (var trainer = new Trainer(model, options, straightDir, data))
        {
            straightLosses = trainer.Train().LogHistory.Where(r => !r.IsEval).Select(r => r.Loss!.Value).ToList();
            straightWeights = Weights(model);
        }

        var checkpoint = Path.Combine(straightDir, "checkpoint-2");
        Assert.True(File.Exists(Path.Combine(checkpoint, TrainingCheckpoints.MasterWeightsFile)));
        var resumedDir = Fixtures.TempDirectory();
        List<double> resumedLosses;
        Dictionary<string, Tensor> resumedWeights;
        using (var model = Bf16Model())
        using (var trainer = new Trainer(model, options, resumedDir, data))
        {
            resumedLosses = trainer.Train(checkpoint).LogHistory.Where(r => !r.IsEval).Select(r => r.Loss!.Value).ToList();
            resumedWeights = Weights(model);
        }

        Assert.Equal(6, straightLosses.Count);
        Assert.Equal(straightLosses, resumedLosses); // steps 1–2 from the checkpoint's log, 3–6 recomputed: bit for bit
        foreach (var (name, w) in straightWeights)
            Assert.True(w.eq(resumedWeights[name]).all().item<bool>(), $"{name} differs after the resumed run");
        output.WriteLine($"losses {string.Join(", ", straightLosses)}");
    }
}

