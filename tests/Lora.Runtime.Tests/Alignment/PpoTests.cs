using Lora.Models;
using Lora.Training;
using Lora.Training.Objectives.Reward;
using Lora.Training.Objectives.Ppo;
using Lora.Training.Objectives.Rollout;
using TorchSharp;
using static Lora.Runtime.Tests.Alignment.AlignmentFixtures;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Alignment;

/// <summary>PPO: GAE, TRL's rollout processing and losses on hand-made tensors, and raising the mean score.</summary>
[Collection(Training.TrainerCollection.Name)]
public class PpoTests : SingleThreaded
{
    private static void AllClose(double[,] expected, Tensor actual, double tol, string what)
    {
        var values = actual.to(ScalarType.Float64).data<double>().ToArray();
        var cols = expected.GetLength(1);
        for (var i = 0; i < expected.GetLength(0); i++)
            for (var j = 0; j < cols; j++)
                Close(expected[i, j], values[i * cols + j], tol, $"{what}[{i},{j}]");
    }

    [Fact]
    public void Gae_matches_TRL()
    {
        foreach (var c in Reference("gae").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var (advantages, returns) = PpoMath.Gae(Tensor2(c.GetProperty("rewards")), Tensor2(c.GetProperty("values")), c.GetProperty("gamma").GetDouble(), c.GetProperty("lam").GetDouble());
            AllClose(Matrix(c.GetProperty("advantages")), advantages, 1e-12, "advantages");
            AllClose(Matrix(c.GetProperty("returns")), returns, 1e-12, "returns");
        }
    }

    [Fact]
    public void Rollout_processing_matches_TRL()
    {
        foreach (var c in Reference("ppo_rollout").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var options = new PpoOptions
            {
                KlEstimator = c.GetProperty("kl_estimator").GetString() == "k1" ? KlEstimator.K1 : KlEstimator.K3,
                WhitenRewards = c.GetProperty("whiten_rewards").GetBoolean(),
                KlCoef = c.GetProperty("kl_coef").GetDouble(),
                Gamma = c.GetProperty("gamma").GetDouble(),
                Lam = c.GetProperty("lam").GetDouble(),
                MissingEosPenalty = c.GetProperty("missing_eos_penalty").ValueKind == System.Text.Json.JsonValueKind.Null ? null : c.GetProperty("missing_eos_penalty").GetDouble(),
            };
            var responses = Tensor2(c.GetProperty("responses")).to(ScalarType.Int64);
            using var r = PpoMath.Process(responses, Tensor2(c.GetProperty("logprobs")), Tensor2(c.GetProperty("ref_logprobs")), Tensor2(c.GetProperty("values")),
                Tensor1(c.GetProperty("raw_scores")), options, c.GetProperty("pad_token_id").GetInt64(), c.GetProperty("eos_token_id").GetInt64());
            Assert.Equal(Doubles(c.GetProperty("scores")), r.Scores.data<double>().ToArray());
            AllClose(Matrix(c.GetProperty("masked_logprobs")), r.Logprobs, 1e-12, "logprobs");
            AllClose(Matrix(c.GetProperty("masked_values")), r.Values, 1e-12, "values");
            AllClose(Matrix(c.GetProperty("kl")), r.Kl, 1e-12, "kl");
            AllClose(Matrix(c.GetProperty("rewards")), r.Rewards, 1e-12, "rewards");
            AllClose(Matrix(c.GetProperty("advantages")), r.Advantages, 1e-10, "advantages");
            AllClose(Matrix(c.GetProperty("returns")), r.Returns, 1e-12, "returns");
            AllClose(Matrix(c.GetProperty("padding_mask_p1")), r.PaddingMaskP1, 0, "padding_mask_p1");
            Close(c.GetProperty("objective/kl").GetDouble(), r.Kl.sum(1).mean().item<double>(), 1e-12, "objective/kl");
            Close(c.GetProperty("objective/entropy").GetDouble(), (-r.Logprobs).sum(1).mean().item<double>(), 1e-12, "objective/entropy");
        }
    }

    [Fact]
    public void Clipped_losses_match_TRL()
    {
        foreach (var c in Reference("ppo_loss").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var options = new PpoOptions { Cliprange = c.GetProperty("cliprange").GetDouble(), CliprangeValue = c.GetProperty("cliprange_value").GetDouble(), VfCoef = c.GetProperty("vf_coef").GetDouble() };
            var lengths = tensor(c.GetProperty("sequence_lengths").EnumerateArray().Select(e => e.GetInt64()).ToArray());
            var old = Tensor2(c.GetProperty("old_logprobs"));
            var idx = arange(old.shape[1], ScalarType.Int64).unsqueeze(0).expand(old.shape[0], old.shape[1]);
            var loss = PpoMath.Loss(Tensor2(c.GetProperty("new_logprobs")), old, Tensor2(c.GetProperty("advantages")), Tensor2(c.GetProperty("vpred")), Tensor2(c.GetProperty("values")),
                Tensor2(c.GetProperty("returns")), idx.gt(lengths.unsqueeze(1)), idx.gt((lengths + 1).unsqueeze(1)), options);
            Close(c.GetProperty("loss").GetDouble(), loss.Loss.item<double>(), 1e-12, "loss");
            Close(c.GetProperty("pg_loss").GetDouble(), loss.PolicyLoss.item<double>(), 1e-12, "pg_loss");
            Close(c.GetProperty("vf_loss").GetDouble(), loss.ValueLoss.item<double>(), 1e-12, "vf_loss");
            Close(c.GetProperty("pg_clipfrac").GetDouble(), loss.PolicyClipFraction.item<double>(), 1e-12, "pg_clipfrac");
            Close(c.GetProperty("vf_clipfrac").GetDouble(), loss.ValueClipFraction.item<double>(), 1e-12, "vf_clipfrac");
            Close(c.GetProperty("approxkl").GetDouble(), loss.ApproxKl.item<double>(), 1e-12, "approxkl");
            Close(c.GetProperty("ratio_mean").GetDouble(), loss.RatioMean.item<double>(), 1e-12, "ratio");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Training_raises_the_mean_score_saves_the_value_head_and_keeps_memory_flat(bool separateCritic)
    {
        var (model, config) = LoraModel(targets: Peft.TargetModules.FromNames(["q_proj", "v_proj", "lm_head"]));
        // A separate critic starts from the base's features and learns its values alone (the policy's value gradient is
        // gone), so the scores rise more slowly: measured 0.375 → 0.41 / 0.53 after 32 steps (seeds 5, 6), 0.75 / 0.72
        // after 64, where the shared layout reaches 0.81 / 0.56 and 0.81 / 0.75.
        var options = new TrainingOptions { LearningRate = 3e-2, MaxSteps = separateCritic ? 64 : 32, BatchSize = 8, GradientAccumulationSteps = 2, Seed = 5, LoggingSteps = 4, SaveSteps = 12 };
        var ppo = new PpoOptions { NumPpoEpochs = 1, NumMiniBatches = 2, ResponseLength = 4, Temperature = 1.0, KlCoef = 0.02 };
        var reward = RewardSource.Function("first_low", s => s.CompletionIds[0] < 160 ? 1 : 0);
        var dir = Fixtures.TempDirectory();
        var live = new List<long>();
        using (model)
        {
            var head = separateCritic ? ValueHead.AttachSeparate(model, config) : ValueHead.Attach(model);
            using var objective = new PpoObjective(GrpoTests.Prompts(16), reward, ppo, options, head, Pad, Eos);
            using var eval = new PpoObjective(GrpoTests.Prompts(32), reward, ppo with { EvalSeed = 3 }, options, head, Pad, Eos, role: "evaluation");
            using var trainer = new Trainer(model, options, dir, objective, eval, config);
            Assert.Equal(16, objective.PromptsPerRollout);
            Assert.Equal(2, objective.StepsPerRollout);
            Assert.Contains(trainer.TrainableParameters, p => p.Name == "v_head.summary.weight");
            trainer.StepCompleted += _ => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            var before = trainer.Evaluate();
            var result = trainer.Train();
            var after = trainer.Evaluate();
            Assert.True(after["objective/scores"] > before["objective/scores"] + 0.2, $"scores {before["objective/scores"]} -> {after["objective/scores"]}");
            var row = result.LogHistory.First(r => !r.IsEval);
            foreach (var name in new[] { "objective/kl", "objective/entropy", "objective/non_score_reward", "objective/rlhf_reward", "objective/scores", "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg", "val/clipfrac_avg", "policy/entropy_avg", "val/ratio" })
                Assert.True(row.Metrics!.ContainsKey(name), name);
        }

        Assert.True(File.Exists(Path.Combine(dir, ValueHead.FileName)));
        Assert.True(File.Exists(Path.Combine(dir, "checkpoint-12", ValueHead.FileName)));
        Assert.Equal(separateCritic, File.Exists(Path.Combine(dir, "checkpoint-12", ValueHead.CriticAdapterName, Peft.PeftAdapter.WeightsFileName)));
        Assert.True(live.Skip(4).Where((_, i) => i % 2 == 1).All(n => n == live[3]), string.Join(",", live)); // the same point of each rollout
    }

    [Fact]
    public void A_separate_critic_trains_its_own_adapter_and_never_the_policy()
    {
        var (model, config) = LoraModel(randomB: true);
        using (model)
        {
            var head = ValueHead.AttachSeparate(model, config);
            Assert.Equal(ValueHead.CriticAdapterName, head.CriticAdapter);
            foreach (var (_, parameter) in head.TrainableParameters)
                parameter.requires_grad = true;
            var policy = model.AdapterParameters(Peft.PeftAdapter.DefaultName).Select(p => p.Parameter).ToList();
            var critic = model.AdapterParameters(ValueHead.CriticAdapterName).Select(p => p.Parameter).ToList();
            Assert.Equal(policy.Count, critic.Count);
            Assert.Equal(2 + critic.Count, head.TrainableParameters.Count);                   // the head and the critic's adapter
            Assert.All(head.TrainableParameters.Skip(2), p => Assert.StartsWith("critic.", p.Name, StringComparison.Ordinal));
            foreach (var p in policy)
                p.requires_grad = true;

            using var scope = NewDisposeScope();
            var ids = randint(0, 256, [2, 6], dtype: ScalarType.Int64);
            var mask = ones_like(ids);
            var hidden = model.HiddenStates(ids, mask);                                          // the policy's pass
            var values = head.Values(model, hidden, ids, mask, 2, 4);                            // (B, 4)
            Assert.Equal([2L, 4L], values.shape);
            values.sum().backward();
            Assert.All(policy, p => Assert.True(p.grad is null, "the value loss reached the policy adapter"));
            Assert.Contains(critic, p => p.grad is not null && p.grad.abs().sum().item<float>() > 0);
            Assert.Equal([Peft.PeftAdapter.DefaultName], model.AdaptedLayers().First().Layer.ActiveAdapters); // the policy is active again
        }

        // The shared layout reads the policy's hidden states: there the value loss does train the policy adapter.
        var (sharedModel, _) = LoraModel(randomB: true);
        using (sharedModel)
        {
            var head = ValueHead.Attach(sharedModel);
            Assert.Null(head.CriticAdapter);
            var policy = sharedModel.AdapterParameters(Peft.PeftAdapter.DefaultName).Select(p => p.Parameter).ToList();
            foreach (var p in policy)
                p.requires_grad = true;
            using var scope = NewDisposeScope();
            var ids = randint(0, 256, [2, 6], dtype: ScalarType.Int64);
            var mask = ones_like(ids);
            head.Values(sharedModel, sharedModel.HiddenStates(ids, mask), ids, mask, 2, 4).sum().backward();
            Assert.Contains(policy, p => p.grad is not null && p.grad.abs().sum().item<float>() > 0);
        }
    }

    [Fact]
    public void A_critic_from_a_reward_model_starts_at_its_scores_at_every_position()
    {
        var dir = Fixtures.TempDirectory();
        using (var rewardModel = CausalLM.FromPretrained(BaseModel))
        {
            RewardModel.AttachScoreHead(rewardModel);
            var rewardConfig = RewardModel.Configure(new Lora.Tuners.LoRA.LoraConfig
            {
                R = 4, LoraAlpha = 8, InitLoraWeights = "false", TargetModules = Peft.TargetModules.FromNames(["q_proj", "k_proj"]),
            });
            manual_seed(11);
            Peft.PeftInjector.Inject(rewardModel, rewardConfig);
            Peft.PeftAdapter.Save(rewardModel, dir, rewardConfig);
        }

        using var scope = NewDisposeScope();
        var ids = randint(0, 256, [2, 6], dtype: ScalarType.Int64);
        var mask = ones_like(ids);
        Tensor expected;
        using (var reloaded = RewardModel.Load(BaseModel, dir))
        using (var noGradRm = no_grad())
            expected = RewardModel.Find(reloaded)!.call(reloaded.HiddenStates(ids, mask)).squeeze(-1); // (B, T)

        var (model, _) = LoraModel(randomB: true); // a policy unlike the reward model (q, v)
        using (model)
        using (var noGradPolicy = no_grad())
        {
            var head = ValueHead.AttachFromRewardModel(model, dir);
            Assert.Contains(model.AdapterParameters(ValueHead.CriticAdapterName), p => p.HostPath.EndsWith("k_proj", StringComparison.Ordinal)); // the reward model's own targets
            var values = head.Values(model, model.HiddenStates(ids, mask), ids, mask, 0, 6);
            Lora.Runtime.Tests.Models.LogitsAssert.Close(values, expected, 1e-5, 1e-6, "first values = the reward model's scores");
            Assert.Equal(0f, head.Summary.bias!.item<float>());
        }

        var (other, config) = LoraModel();
        using (other)
        {
            File.WriteAllText(Path.Combine(dir, Peft.PeftConfigFile.FileName), File.ReadAllText(Path.Combine(dir, Peft.PeftConfigFile.FileName)).Replace("\"score\"", "\"lm_head\""));
            var error = Assert.Throws<LoraException>(() => ValueHead.AttachFromRewardModel(other, dir));
            Assert.Contains("not a reward model adapter", error.Message, StringComparison.Ordinal);
        }
    }
}
