using Lora.Data.Preference;
using Lora.Models;
using Lora.Peft;
using Lora.Training;
using Lora.Training.Objectives.Reward;
using Lora.Tuners.LoRA;
using TorchSharp;
using static Lora.Runtime.Tests.Alignment.AlignmentFixtures;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Alignment;

/// <summary>Reward-model training: TRL's formulas, a hand computation, held-out accuracy, the saved PEFT layout.</summary>
[Collection(Training.TrainerCollection.Name)]
public class RewardTests : SingleThreaded
{
    [Fact]
    public void Loss_matches_TRL_reward_trainer_formulas()
    {
        foreach (var c in Reference("reward").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var rc = Tensor1(c.GetProperty("rewards_chosen"));
            var rr = Tensor1(c.GetProperty("rewards_rejected"));
            var margin = c.GetProperty("margin").ValueKind == System.Text.Json.JsonValueKind.Null ? null : Tensor1(c.GetProperty("margin"));
            double? center = c.GetProperty("center_rewards_coefficient").ValueKind == System.Text.Json.JsonValueKind.Null ? null : c.GetProperty("center_rewards_coefficient").GetDouble();
            var loss = RewardLoss.PerPair(rc, rr, margin, center).mean().item<double>();
            Close(c.GetProperty("loss").GetDouble(), loss, 1e-12, "reward loss");
        }
    }

    /// <summary>The objective's loss and accuracy equal a hand computation: score · h at the last real token.</summary>
    [Fact]
    public void Loss_and_accuracy_equal_a_hand_computation_from_the_hidden_states()
    {
        var (model, config) = LoraModel(randomB: true, modulesToSave: ["score"]);
        using (model)
        {
            var pairs = VowelPairs(3, seed: 1).Select((p, i) => p with { Margin = 0.25 * i }).ToList();
            var objective = new RewardObjective(pairs, Pad, new RewardOptions { CenterRewardsCoefficient = 0.01 });
            using var batch = objective.Collate([0, 1, 2]);
            using var scope = NewDisposeScope();
            var result = objective.Loss(model, batch, CPU);

            double Hand(int[] ids)
            {
                using var noGrad = no_grad();
                var h = model.HiddenStates(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]))[0, -1].to(ScalarType.Float64);
                var w = RewardModel.Find(model)!.Weight[0].to(ScalarType.Float64);
                return (h * w).sum().item<double>();
            }

            double loss = 0, accuracy = 0, margin = 0;
            foreach (var p in pairs)
            {
                var (c, r) = (Hand(p.ChosenSequence), Hand(p.RejectedSequence));
                loss += -LogSigmoid(c - r - p.Margin!.Value) + 0.01 * (c + r) * (c + r);
                accuracy += c > r ? 1 : 0;
                margin += c - r;
            }

            Close(loss / 3, result.Sum.item<float>() / 3, 1e-5, "loss");
            Close(accuracy / 3, result.MetricSums!["accuracy"].item<float>() / 3, 1e-6, "accuracy");
            Close(margin / 3, result.MetricSums!["margin"].item<float>() / 3, 1e-5, "margin");
        }

        static (CausalLM, LoraConfig) LoraModel(bool randomB, string[] modulesToSave)
        {
            var model = CausalLM.FromPretrained(BaseModel);
            torch.manual_seed(5);
            RewardModel.AttachScoreHead(model);
            var config = RewardModel.Configure(new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) });
            Assert.Equal(modulesToSave, config.ModulesToSave);
            PeftInjector.Inject(model, randomB ? config with { InitLoraWeights = "false" } : config);
            return (model, config);
        }
    }

    private static (CausalLM Model, LoraConfig Config) RewardModelWithAdapter(double dropout = 0)
    {
        var model = CausalLM.FromPretrained(BaseModel);
        torch.manual_seed(7);
        RewardModel.AttachScoreHead(model);
        var config = RewardModel.Configure(new LoraConfig { R = 8, LoraAlpha = 16, LoraDropout = dropout, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) });
        PeftInjector.Inject(model, config);
        return (model, config);
    }

    private static TrainingOptions Options => new()
    {
        LearningRate = 3e-3,
        MaxSteps = 24,
        BatchSize = 4,
        GradientAccumulationSteps = 2,
        Seed = 11,
        LoggingSteps = 4,
        SaveSteps = 0,
        EvalBatchSize = 8,
    };

    /// <summary>Trained on the vowel task, the reward model ranks unseen pairs; the saved adapter is TRL/PEFT's layout.</summary>
    [Fact]
    public void Training_raises_held_out_accuracy_and_saves_a_seq_cls_adapter_that_reloads()
    {
        var train = VowelPairs(32, seed: 1);
        var heldOut = new RewardObjective(VowelPairs(16, seed: 2), Pad, role: "evaluation");
        var dir = Fixtures.TempDirectory();
        var (model, config) = RewardModelWithAdapter();
        IReadOnlyDictionary<string, double> before, after;
        TrainingResult result;
        using (model)
        using (var trainer = new Trainer(model, Options, dir, new RewardObjective(train, Pad), heldOut, config))
        {
            before = trainer.Evaluate();
            result = trainer.Train();
            after = trainer.Evaluate();
        }

        Assert.True(after["accuracy"] >= 0.9 && after["accuracy"] > before["accuracy"], $"held-out accuracy {before["accuracy"]} -> {after["accuracy"]}");
        Assert.True(after["loss"] < before["loss"] && after["margin"] > before["margin"]);
        var logged = result.LogHistory.First(r => !r.IsEval);
        Assert.True(logged.Metrics!.ContainsKey("accuracy") && logged.Metrics.ContainsKey("margin") && logged.Metrics.ContainsKey("mean_reward"));
        Assert.Contains(result.LogHistory, r => r.IsEval && r.Metrics!.ContainsKey("eval_accuracy"));

        // adapter_config.json: SEQ_CLS with the head in modules_to_save; the head under PEFT's key.
        var saved = PeftConfigFile.Read<LoraConfig>(dir);
        Assert.Equal("SEQ_CLS", saved.TaskType);
        Assert.Equal(["score"], saved.ModulesToSave);
        using (var weights = Lora.SafeTensors.SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName)))
            Assert.Equal([1, 64], weights.Tensors["base_model.model.score.weight"].Shape);

        // A SEQ_CLS config as PEFT writes it (classifier + score) loads too, and gives the trained accuracy back.
        var json = File.ReadAllText(Path.Combine(dir, PeftConfigFile.FileName)).Replace("\"score\"", "\"classifier\", \"score\"");
        File.WriteAllText(Path.Combine(dir, PeftConfigFile.FileName), json);
        using var reloaded = RewardModel.Load(BaseModel, dir);
        using var noGrad = no_grad();
        Assert.Equal(after["accuracy"], heldOut.Evaluate(reloaded, CPU, 8)["accuracy"]);
    }

    [Fact]
    public void Resume_is_exact()
    {
        var data = VowelPairs(16, seed: 1);
        var options = Options with { MaxSteps = 6, SaveSteps = 2, LoggingSteps = 1 };
        TrainingResult Run(string dir, string? resume, CancellationToken cancel = default, Action<Trainer>? hook = null)
        {
            var (model, config) = RewardModelWithAdapter(dropout: 0.1);
            using (model)
            using (var trainer = new Trainer(model, options, dir, new RewardObjective(data, Pad), adapterConfig: config))
            {
                hook?.Invoke(trainer);
                return trainer.Train(resume, cancel);
            }
        }

        var straightDir = Fixtures.TempDirectory();
        var straight = Run(straightDir, null);
        var resumedDir = Fixtures.TempDirectory();
        using (var cancel = new CancellationTokenSource())
            Assert.Throws<OperationCanceledException>(() => Run(resumedDir, null, cancel.Token, t => t.StepCompleted += p => { if (p.Step == 3) cancel.Cancel(); }));
        var resumed = Run(resumedDir, TrainingCheckpoints.Latest(resumedDir));
        Assert.Equal(straight.LogHistory.Select(r => r.Loss), resumed.LogHistory.Select(r => r.Loss));
        Assert.Equal(straight.LogHistory.Select(r => r.Metrics!["accuracy"].ToString()), resumed.LogHistory.Select(r => r.Metrics!["accuracy"].ToString()));
        Assert.Equal(0, Training.TrainerFixtures.AdaptersClose(resumedDir, straightDir, 0));
    }
}
