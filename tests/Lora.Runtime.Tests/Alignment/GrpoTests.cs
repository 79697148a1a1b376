using System.Text.Json;
using Lora.Data.Preference;
using Lora.Training;
using Lora.Training.Objectives.Grpo;
using Lora.Training.Objectives.Rollout;
using TorchSharp;
using static Lora.Runtime.Tests.Alignment.AlignmentFixtures;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Alignment;

/// <summary>GRPO: TRL's advantages and loss on hand-made tensors, and learning a rule-based reward.</summary>
[Collection(Training.TrainerCollection.Name)]
public class GrpoTests : SingleThreaded
{
    private static GrpoScaleRewards Scale(string s) => s switch { "group" => GrpoScaleRewards.Group, "batch" => GrpoScaleRewards.Batch, _ => GrpoScaleRewards.None };

    private static GrpoLossType LossType(string s) => s switch { "dapo" => GrpoLossType.Dapo, "grpo" => GrpoLossType.Grpo, _ => GrpoLossType.DrGrpo };

    [Fact]
    public void Advantages_match_TRL()
    {
        foreach (var c in Reference("grpo_advantages").EnumerateArray())
        {
            var a = GrpoMath.Advantages(Matrix(c.GetProperty("rewards_per_func")), Doubles(c.GetProperty("reward_weights")), c.GetProperty("num_generations").GetInt32(), Scale(c.GetProperty("scale_rewards").GetString()!));
            var expected = Doubles(c.GetProperty("advantages"));
            for (var i = 0; i < expected.Length; i++)
                Close(expected[i], a.Advantages[i], 1e-9, $"advantage {i} ({c.GetProperty("scale_rewards")})");
            Close(c.GetProperty("reward").GetDouble(), a.Reward, 1e-12, "reward");
            Close(c.GetProperty("reward_std").GetDouble(), a.RewardStd, 1e-12, "reward_std");
            Close(c.GetProperty("frac_reward_zero_std").GetDouble(), a.FracRewardZeroStd, 1e-12, "frac_reward_zero_std");
            Assert.Equal(Doubles(c.GetProperty("rewards_mean_per_func")).Select(v => Math.Round(v, 10)), a.MeanPerFunction.Select(v => Math.Round(v, 10)));
            Assert.Equal(Doubles(c.GetProperty("rewards_std_per_func")).Select(v => Math.Round(v, 10)), a.StdPerFunction.Select(v => Math.Round(v, 10)));
        }
    }

    [Fact]
    public void Loss_and_clip_ratios_match_TRL_for_each_loss_type()
    {
        foreach (var c in Reference("grpo_loss").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var type = LossType(c.GetProperty("loss_type").GetString()!);
            var options = new GrpoOptions
            {
                LossType = type,
                Beta = c.GetProperty("beta").GetDouble(),
                Epsilon = c.GetProperty("epsilon").GetDouble(),
                EpsilonHigh = c.GetProperty("epsilon_high").GetDouble(),
                MaxCompletionLength = c.GetProperty("max_completion_length").GetInt32(),
            };
            var logps = Tensor2(c.GetProperty("per_token_logps"));
            var lengths = c.GetProperty("completion_lengths").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var mask = (arange(logps.shape[1], dtype: ScalarType.Float64).unsqueeze(0) < tensor(lengths.Select(l => (double)l).ToArray()).unsqueeze(1)).to(ScalarType.Float64);
            var advantages = Tensor1(c.GetProperty("advantages"));
            var (perToken, kl, ratio) = GrpoMath.PerTokenLoss(logps, Tensor2(c.GetProperty("old_per_token_logps")), Tensor2(c.GetProperty("ref_per_token_logps")), advantages, options);
            var loss = GrpoMath.Reduce(perToken, mask, type).item<double>() / GrpoMath.Normalizer(type, lengths.Length, lengths.Sum(), options.MaxCompletionLength);
            Close(c.GetProperty("loss").GetDouble(), loss, 1e-12, $"{type} loss");
            var tokens = mask.sum().item<double>();
            if (c.GetProperty("kl").ValueKind != JsonValueKind.Null)
                Close(c.GetProperty("kl").GetDouble(), (kl! * mask).sum().item<double>() / tokens, 1e-12, "kl");
            var (low, high, region) = GrpoMath.Clipped(ratio, advantages, options);
            Close(c.GetProperty("clip_ratio/low_mean").GetDouble(), (low.to(ScalarType.Float64) * mask).sum().item<double>() / tokens, 1e-12, "low");
            Close(c.GetProperty("clip_ratio/high_mean").GetDouble(), (high.to(ScalarType.Float64) * mask).sum().item<double>() / tokens, 1e-12, "high");
            Close(c.GetProperty("clip_ratio/region_mean").GetDouble(), (region.to(ScalarType.Float64) * mask).sum().item<double>() / tokens, 1e-12, "region");
        }
    }

    /// <summary>Prompts in byte ids ("Q:" + a letter).</summary>
    internal static List<PromptExample> Prompts(int count)
    {
        var random = new Random(4);
        return Enumerable.Range(0, count)
            .Select(_ => new PromptExample([256, 81, 58, 97 + random.Next(26)], new PromptRecord(PreferencePart.FromIds([1]), new Dictionary<string, JsonElement>())))
            .ToList();
    }

    /// <summary>A rule-based reward the tiny model can learn fast: 1 when the completion starts with a token below 160.</summary>
    internal static RewardSource LowTokens => RewardSource.Function("low_tokens", s => s.CompletionIds.Count > 0 && s.CompletionIds[0] < 160 ? 1 : 0);

    private static TrainingOptions Options => new() { LearningRate = 5e-2, MaxSteps = 20, BatchSize = 8, GradientAccumulationSteps = 1, Seed = 5, LoggingSteps = 4, SaveSteps = 0 };

    private static GrpoOptions Grpo => new() { NumGenerations = 4, MaxCompletionLength = 6, Beta = 0.04 };

    [Fact]
    public void Training_raises_the_mean_reward_and_logs_TRL_metrics()
    {
        // LoRA on lm_head too: the tiny random model's logits are too small for attention adapters alone to move
        // its first-token distribution in a few steps.
        var (model, config) = LoraModel(targets: Peft.TargetModules.FromNames(["q_proj", "v_proj", "lm_head"]));
        var options = Options;
        var objective = new GrpoObjective(Prompts(16), [LowTokens], Grpo, options, Pad, [Eos]);
        var eval = new GrpoObjective(Prompts(4), [LowTokens], Grpo with { EvalSeed = 9 }, options, Pad, [Eos], role: "evaluation");
        using (model)
        using (var trainer = new Trainer(model, options, Fixtures.TempDirectory(), objective, eval, config))
        {
            Assert.Equal(2, objective.PromptsPerRollout);
            var before = trainer.Evaluate();
            var result = trainer.Train();
            var after = trainer.Evaluate();
            Assert.True(after["reward"] > before["reward"] + 0.3, $"reward {before["reward"]} -> {after["reward"]}");
            var row = result.LogHistory.First(r => !r.IsEval);
            foreach (var name in new[] { "reward", "reward_std", "rewards/low_tokens/mean", "rewards/low_tokens/std", "frac_reward_zero_std", "kl", "entropy", "clip_ratio/region_mean", "completions/mean_length" })
                Assert.True(row.Metrics!.ContainsKey(name), name);
            Assert.Contains(result.LogHistory, r => r.IsEval && r.Metrics!.ContainsKey("eval_reward"));
        }
    }

    [Fact]
    public void Rollouts_are_reproducible_and_memory_stays_flat()
    {
        var live = new List<long>();
        List<double?> Run(bool count)
        {
            var (model, config) = LoraModel();
            var options = Options with { MaxSteps = 10, GradientAccumulationSteps = 2, BatchSize = 4, LoggingSteps = 1 };
            using (model)
            using (var trainer = new Trainer(model, options, Fixtures.TempDirectory(), new GrpoObjective(Prompts(8), [LowTokens], Grpo with { NumIterations = 2 }, options, Pad, [Eos]), adapterConfig: config))
            {
                if (count)
                    trainer.StepCompleted += _ => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
                return trainer.Train().LogHistory.Select(r => r.Loss).ToList();
            }
        }

        var a = Run(count: true);
        Assert.Equal(a, Run(count: false));
        Assert.Equal(10, live.Count);
        Assert.All(live.Skip(4), n => Assert.Equal(live[3], n));
    }
}
