using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Data;
using Lora.Models;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Training;

/// <summary>Trainer behaviour: resume equivalence, warmup ratio, checkpoints, divergence, memory discipline.</summary>
[Collection(TrainerCollection.Name)]
public class TrainerTests
{
    private static List<TokenizedExample> Data() =>
        TrainerFixtures.Examples(TrainerFixtures.TrainTrace("batch.safetensors"), labelsFromFile: true);

    /// <summary>The train_trace base with a fresh seeded adapter (with dropout, so the RNG state matters).</summary>
    private static (CausalLM Model, LoraConfig Config) Model(double dropout = 0.1)
    {
        var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"));
        var config = new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = dropout, TargetModules = TargetModules.FromNames(["q_proj", "v_proj", "down_proj"]) };
        torch.manual_seed(3);
        PeftInjector.Inject(model, config with { InitLoraWeights = "false" });
        return (model, config);
    }

    private static TrainingOptions Options => new()
    {
        LearningRate = 5e-3,
        WeightDecay = 0.01,
        Scheduler = SchedulerType.Cosine,
        WarmupSteps = 1,
        MaxSteps = 6,
        BatchSize = 1,
        GradientAccumulationSteps = 2,
        Sampling = SamplingStrategy.Random,
        Seed = 11,
        LoggingSteps = 1,
        SaveSteps = 2,
    };

    [Fact]
    public void Resumed_run_gives_the_same_losses_and_adapter_as_an_uninterrupted_one()
    {
        var data = Data();
        var straightDir = Fixtures.TempDirectory();
        TrainingResult straight;
        var (m1, c1) = Model();
        using (m1)
        using (var trainer = new Trainer(m1, Options, straightDir, data, data, c1))
            straight = trainer.Train();

        // Interrupted after step 3 (the newest checkpoint is checkpoint-2), then resumed by a new process-like trainer.
        var resumedDir = Fixtures.TempDirectory();
        var (m2, c2) = Model();
        using (m2)
        using (var trainer = new Trainer(m2, Options, resumedDir, data, data, c2))
        {
            using var cancel = new CancellationTokenSource();
            trainer.StepCompleted += p =>
            {
                if (p.Step == 3)
                    cancel.Cancel();
            };
            Assert.Throws<OperationCanceledException>(() => trainer.Train(cancellationToken: cancel.Token));
        }

        Assert.Equal(Path.Combine(resumedDir, "checkpoint-2"), TrainingCheckpoints.Latest(resumedDir));
        var (m3, c3) = Model(); // different state in memory does not matter: the checkpoint is restored
        TrainingResult resumed;
        using (m3)
        using (var trainer = new Trainer(m3, Options, resumedDir, data, data, c3))
            resumed = trainer.Train(TrainingCheckpoints.Latest(resumedDir));

        var a = straight.LogHistory.Where(r => !r.IsEval).Select(r => r.Loss!.Value).ToList();
        var b = resumed.LogHistory.Where(r => !r.IsEval).Select(r => r.Loss!.Value).ToList();
        Assert.Equal(6, a.Count);
        Assert.Equal(a, b);
        Assert.Equal(straight.LogHistory.Where(r => r.IsEval).Select(r => r.EvalLoss), resumed.LogHistory.Where(r => r.IsEval).Select(r => r.EvalLoss));
        Assert.Equal(0, TrainerFixtures.AdaptersClose(resumedDir, straightDir, 0));
        Assert.Equal(File.ReadAllLines(Path.Combine(straightDir, Trainer.MetricsFileName)).Length, File.ReadAllLines(Path.Combine(resumedDir, Trainer.MetricsFileName)).Length);
    }

    [Fact]
    public void Checkpoint_layout_and_save_total_limit()
    {
        var dir = Fixtures.TempDirectory();
        var (model, config) = Model();
        using (model)
        using (var trainer = new Trainer(model, Options with { SaveSteps = 1, SaveTotalLimit = 2, MaxSteps = 5 }, dir, Data(), adapterConfig: config))
            trainer.Train();

        Assert.Equal(["checkpoint-4", "checkpoint-5"], TrainingCheckpoints.List(dir).Select(c => Path.GetFileName(c.Path)));
        var last = Path.Combine(dir, "checkpoint-5");
        foreach (var file in new[] { "adapter_config.json", "adapter_model.safetensors", "optimizer.bin", "scheduler.json", "rng_state.bin", "trainer_state.json", "training_args.json" })
            Assert.True(File.Exists(Path.Combine(last, file)), file);
        var state = TrainerState.Read(Path.Combine(last, TrainerState.FileName));
        Assert.Equal(5, state.GlobalStep);
        Assert.Equal(5, state.Entries().Count(e => e.Loss is not null));
        Assert.True(File.Exists(Path.Combine(dir, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir, Trainer.LossCurveFileName)));
        Assert.Empty(Directory.GetDirectories(dir, ".checkpoint-*"));
    }

    [Fact]
    public void Warmup_ratio_and_epochs_give_the_step_counts()
    {
        var (model, config) = Model();
        using (model)
        using (var trainer = new Trainer(model, Options with { MaxSteps = -1, Epochs = 3, WarmupSteps = 0, WarmupRatio = 0.1 }, Fixtures.TempDirectory(), Data(), adapterConfig: config))
        {
            // 4 examples / batch 1 = 4 micro-batches, accumulation 2 → 2 steps per epoch, 6 in all, W = ceil(0.6) = 1.
            Assert.Equal(2, trainer.StepsPerEpoch);
            Assert.Equal(6, trainer.TotalSteps);
            Assert.Equal(1, trainer.Schedule.WarmupSteps);
        }
    }

    [Fact]
    public void Nan_loss_stops_with_the_step_and_the_last_good_checkpoint()
    {
        var dir = Fixtures.TempDirectory();
        var (model, config) = Model();
        using (model)
        using (var trainer = new Trainer(model, Options with { SaveSteps = 2 }, dir, Data(), adapterConfig: config))
        {
            trainer.Message += m =>
            {
                if (m.StartsWith("saved", StringComparison.Ordinal) && m.EndsWith("checkpoint-2", StringComparison.Ordinal))
                {
                    using var noGrad = no_grad();
                    trainer.TrainableParameters[0].Parameter.fill_(double.NaN);
                }
            };
            var e = Assert.Throws<LoraException>(() => trainer.Train());
            Assert.Contains("at step 3", e.Message);
            Assert.Contains("checkpoint-2", e.Message);
        }

        Assert.Equal(Path.Combine(dir, "checkpoint-2"), TrainingCheckpoints.Latest(dir));
    }

    /// <summary>
    /// Scalars are read only at logging steps, yet a loss that turns NaN between two reads still stops the run naming
    /// its step, and nothing of it (or of the steps after it) was applied: the device-side found_inf flag skipped them.
    /// </summary>
    [Fact]
    public void A_nan_between_logging_steps_is_caught_at_the_next_read_with_nothing_applied()
    {
        var (model, config) = Model(dropout: 0);
        using (model)
        {
            var objective = new NanAtCall(new Lora.Training.Objectives.CausalLMObjective(Data()), nanFromCall: 3, model); // step 2 = calls 3 and 4
            var progress = new List<int>();
            using var trainer = new Trainer(model, Options with { LoggingSteps = 4, SaveSteps = 0, EvalSteps = 0 }, Fixtures.TempDirectory(), objective, adapterConfig: config);
            trainer.StepCompleted += p => progress.Add(p.Step);
            var e = Assert.Throws<LoraException>(() => trainer.Train());
            Assert.Contains("became NaN at step 2", e.Message);
            Assert.Empty(progress); // the read at step 4 found the NaN before reporting any step
            foreach (var (name, p) in trainer.TrainableParameters)
                Assert.True(p.detach().equal(objective.Snapshot![name]).all().item<bool>(), $"{name} changed after step 1");
        }
    }

    /// <summary>Delegates to an objective; from the given Loss call on the loss is NaN. Snapshots the trainable
    /// parameters at that call (they hold step 1's update then).</summary>
    private sealed class NanAtCall(Lora.Training.Objectives.ITrainingObjective inner, int nanFromCall, CausalLM model) : Lora.Training.Objectives.ITrainingObjective
    {
        private int _calls;

        public Dictionary<string, Tensor>? Snapshot { get; private set; }

        public IReadOnlyList<int> Lengths => inner.Lengths;

        public Lora.Training.Objectives.IObjectiveBatch Collate(IReadOnlyList<int> indices) => inner.Collate(indices);

        public Lora.Training.Objectives.ObjectiveLoss Loss(CausalLM m, Lora.Training.Objectives.IObjectiveBatch batch, Device device)
        {
            var loss = inner.Loss(m, batch, device);
            if (++_calls < nanFromCall)
                return loss;
            Snapshot ??= model.named_parameters().Where(p => p.parameter.requires_grad)
                .ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope());
            return loss with { Sum = loss.Sum * double.NaN };
        }

        public IReadOnlyDictionary<string, double> Evaluate(CausalLM m, Device device, int batchSize) => inner.Evaluate(m, device, batchSize);
    }

    [Fact]
    public void Weight_decay_skips_biases_and_norm_weights()
    {
        using var model = CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"));
        var config = new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = TargetModules.FromNames(["q_proj"]), LoraBiasTerm = true };
        PeftInjector.Inject(model, config);
        model.MarkOnlyAdaptersTrainable();
        var (decay, noDecay) = WeightDecayGroups.Split(model);
        Assert.All(decay, p => Assert.Matches(@"lora_(A|B)\.weight$", p.Name));
        Assert.All(noDecay, p => Assert.EndsWith("lora_B.bias", p.Name));
        Assert.Equal(2 * 2, decay.Count);

        // Full fine-tuning: every parameter trains; biases and RMSNorm weights are not decayed, the rest are.
        using var full = CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"));
        foreach (var (_, p) in full.named_parameters())
            p.requires_grad = true;
        var (d, n) = WeightDecayGroups.Split(full);
        Assert.Contains(n, p => p.Name == "model.layers.0.self_attn.q_proj.bias");
        Assert.Contains(n, p => p.Name == "model.layers.1.input_layernorm.weight");
        Assert.Contains(n, p => p.Name == "model.norm.weight");
        Assert.Contains(d, p => p.Name == "model.embed_tokens.weight");
        Assert.Contains(d, p => p.Name == "model.layers.0.mlp.up_proj.weight");
        Assert.All(n, p => Assert.True(p.Name.EndsWith(".bias", StringComparison.Ordinal) || p.Name.Contains("norm", StringComparison.Ordinal), p.Name));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Native_memory_stays_flat_over_many_steps(bool checkpointing)
    {
        var data = Data();
        var (model, config) = Model();
        var live = new List<long>();
        using (model)
        using (var trainer = new Trainer(model, Options with { MaxSteps = 12, SaveSteps = 0, GradientCheckpointing = checkpointing, LoggingSteps = 3 }, Fixtures.TempDirectory(), data, data, config))
        {
            trainer.StepCompleted += _ => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            trainer.Train();
        }

        Assert.Equal(12, live.Count);
        Assert.All(live.Skip(2), n => Assert.Equal(live[2], n));
    }

    [Fact]
    public void Top_layers_and_full_modes_train_the_right_parameters()
    {
        var data = Data();
        using (var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base")))
        using (var trainer = new Trainer(model, Options with { Mode = TrainingMode.TopLayers, TopLayers = 1, MaxSteps = 1, SaveSteps = 0, WarmupSteps = 0 }, Fixtures.TempDirectory(), data))
        {
            var names = trainer.TrainableParameters.Select(p => p.Name).ToList();
            Assert.Contains("model.layers.1.self_attn.q_proj.weight", names);
            Assert.Contains("model.norm.weight", names);
            Assert.DoesNotContain(names, n => n.StartsWith("model.layers.0.", StringComparison.Ordinal) || n.StartsWith("model.embed", StringComparison.Ordinal) || n.StartsWith("lm_head", StringComparison.Ordinal));
            var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
            var result = trainer.Train();
            Assert.True(File.Exists(Path.Combine(result.OutputDirectory, "model.safetensors")));
            Assert.True(File.Exists(Path.Combine(result.OutputDirectory, "config.json")));
            foreach (var (name, p) in model.named_parameters())
                Assert.True(names.Contains(name) == !p.detach().eq(before[name]).all().item<bool>(), name);
        }

        using (var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base")))
        using (var trainer = new Trainer(model, Options with { Mode = TrainingMode.Full, MaxSteps = 1 }, Fixtures.TempDirectory(), data))
            Assert.Equal(model.named_parameters().Count(), trainer.TrainableParameters.Count);
    }

    [Fact]
    public void Bad_setups_are_user_errors()
    {
        var data = Data();
        using var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"));
        var dir = Fixtures.TempDirectory();
        Assert.Contains("adapters", Assert.Throws<LoraException>(() => new Trainer(model, Options, dir, data)).Message);
        Assert.Contains("not both", Assert.Throws<LoraException>(() => new Trainer(model, Options with { WarmupRatio = 0.1 }, dir, data)).Message);
        Assert.Contains("load the base model in bfloat16", Assert.Throws<LoraException>(() => new Trainer(model, Options with { Bf16 = true }, dir, data)).Message);
        Assert.Contains("no examples", Assert.Throws<LoraException>(() => new Trainer(model, Options with { Mode = TrainingMode.Full }, dir, [])).Message);
        var masked = data.Select(e => e with { Labels = e.Labels.Select(_ => TokenizedExample.IgnoreIndex).ToArray() }).ToList();
        Assert.Contains("fully masked", Assert.Throws<LoraException>(() => new Trainer(model, Options with { Mode = TrainingMode.Full }, dir, masked)).Message);
    }
}
