using Lora.Data.Preference;
using Lora.Models;
using Lora.Peft;
using Lora.Training;
using Lora.Training.Objectives;
using Lora.Training.Objectives.Dpo;
using TorchSharp;
using static Lora.Runtime.Tests.Alignment.AlignmentFixtures;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Alignment;

/// <summary>DPO: TRL's formulas, metrics at init against a hand computation, the zero-init identity, learning,
/// exact resume, memory.</summary>
[Collection(Training.TrainerCollection.Name)]
public class DpoTests : SingleThreaded
{
    [Fact]
    public void Losses_match_TRL_formulas_for_every_loss_type()
    {
        foreach (var c in Reference("dpo").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var options = new DpoOptions { LossType = DpoLoss.Parse(c.GetProperty("loss_type").GetString()!), Beta = c.GetProperty("beta").GetDouble(), LabelSmoothing = c.GetProperty("label_smoothing").GetDouble() };
            var loss = DpoLoss.PerPair(Tensor1(c.GetProperty("chosen_logps")), Tensor1(c.GetProperty("rejected_logps")),
                Tensor1(c.GetProperty("ref_chosen_logps")), Tensor1(c.GetProperty("ref_rejected_logps")),
                Tensor1(c.GetProperty("chosen_lengths")), Tensor1(c.GetProperty("rejected_lengths")), options);
            var expected = Doubles(c.GetProperty("per_sequence_loss"));
            var actual = loss.data<double>().ToArray();
            for (var i = 0; i < expected.Length; i++)
                Close(expected[i], actual[i], 1e-12, $"{options.LossType}[{i}]");
        }
    }

    /// <summary>Pairs of unequal lengths, so padding and the completion mask matter.</summary>
    private static List<PreferenceExample> Pairs() =>
    [
        new([256, 81, 58, 97], [98, 99, 257], [100, 257]),
        new([256, 81, 58], [101, 102, 103, 104, 257], [105, 106, 257]),
        new([256, 81, 58, 120, 121], [107, 257], [108, 109, 110, 257]),
    ];

    [Theory]
    [InlineData(DpoLossType.Sigmoid)]
    [InlineData(DpoLossType.Ipo)]
    [InlineData(DpoLossType.Hinge)]
    [InlineData(DpoLossType.Robust)]
    public void Metrics_at_init_equal_a_hand_computation_from_logits(DpoLossType lossType)
    {
        // policy = base + the PEFT fixture adapter (non-zero), reference = the same model with adapters disabled
        using var model = CausalLM.FromPretrained(BaseModel);
        PeftAdapter.Load(model, Adapter);
        var pairs = Pairs();
        var options = new DpoOptions { LossType = lossType, Beta = lossType == DpoLossType.Hinge ? 0.5 : 0.1, LabelSmoothing = lossType == DpoLossType.Robust ? 0.2 : 0 };
        var objective = new DpoObjective(pairs, Pad, options);
        using var batch = objective.Collate([0, 1, 2]);
        using var scope = NewDisposeScope();
        var result = objective.Loss(model, batch, CPU);

        double loss = 0, rc = 0, rr = 0, acc = 0, margins = 0, lc = 0, lr = 0;
        var beta = options.Beta;
        foreach (var p in pairs)
        {
            var n = p.PromptIds.Length;
            var pc = HandLogp(model, p.ChosenSequence, n);
            var pr = HandLogp(model, p.RejectedSequence, n);
            var qc = HandLogp(model, p.ChosenSequence, n, disableAdapters: true);
            var qr = HandLogp(model, p.RejectedSequence, n, disableAdapters: true);
            var (cr, rj) = (pc - qc, pr - qr);
            var delta = cr - rj;
            loss += lossType switch
            {
                DpoLossType.Sigmoid => -LogSigmoid(beta * delta),
                DpoLossType.Hinge => Math.Max(0, 1 - beta * delta),
                DpoLossType.Ipo => Math.Pow(cr / p.ChosenIds.Length - rj / p.RejectedIds.Length - 1 / (2 * beta), 2),
                _ => (-(1 - 0.2) * LogSigmoid(beta * delta) + 0.2 * LogSigmoid(-beta * delta)) / (1 - 0.4),
            };
            rc += beta * cr;
            rr += beta * rj;
            acc += beta * cr > beta * rj ? 1 : 0;
            margins += beta * delta;
            lc += pc;
            lr += pr;
        }

        var m = result.MetricSums!;
        Close(loss / 3, result.Sum.item<float>() / 3, 2e-5, "loss");
        Close(rc / 3, m["rewards/chosen"].item<float>() / 3, 2e-5, "rewards/chosen");
        Close(rr / 3, m["rewards/rejected"].item<float>() / 3, 2e-5, "rewards/rejected");
        Close(acc / 3, m["rewards/accuracies"].item<float>() / 3, 1e-6, "rewards/accuracies");
        Close(margins / 3, m["rewards/margins"].item<float>() / 3, 2e-5, "rewards/margins");
        Close(lc / 3, m["logps/chosen"].item<float>() / 3, 2e-5, "logps/chosen");
        Close(lr / 3, m["logps/rejected"].item<float>() / 3, 2e-5, "logps/rejected");
        Assert.NotEqual(0, margins); // the adapter moves the policy away from the reference

        // Precomputed reference log-probs give the same numbers.
        var precomputed = new DpoObjective(pairs, Pad, options with { PrecomputeRefLogProbs = true });
        using var again = precomputed.Collate([0, 1, 2]);
        Close(result.Sum.item<float>(), precomputed.Loss(model, again, CPU).Sum.item<float>(), 1e-5, "precomputed");
    }

    private static TrainingOptions Options => new()
    {
        LearningRate = 5e-3,
        MaxSteps = 6,
        BatchSize = 2,
        GradientAccumulationSteps = 2,
        Seed = 11,
        LoggingSteps = 1,
        SaveSteps = 0,
    };

    [Fact]
    public void A_zero_initialised_LoRA_gives_loss_ln2_and_accuracy_0_at_step_1()
    {
        var (model, config) = LoraModel();
        using (model)
        using (var trainer = new Trainer(model, Options with { MaxSteps = 1 }, Fixtures.TempDirectory(), new DpoObjective(Pairs(), Pad), adapterConfig: config))
        {
            var row = trainer.Train().LogHistory.Single(r => !r.IsEval);
            Close(Math.Log(2), row.Loss!.Value, 1e-6, "loss");
            Assert.Equal(0.0, (double)row.Metrics!["rewards/accuracies"]);
            Assert.Equal(0.0, (double)row.Metrics["rewards/margins"], 6);
        }
    }

    [Fact]
    public void Training_widens_the_margins_on_held_out_pairs()
    {
        var (model, config) = LoraModel();
        var heldOut = new DpoObjective(VowelPairs(12, seed: 2), Pad, role: "evaluation");
        using (model)
        using (var trainer = new Trainer(model, Options with { MaxSteps = 16, BatchSize = 4, LearningRate = 1e-2, LoggingSteps = 4 }, Fixtures.TempDirectory(),
                   new DpoObjective(VowelPairs(32, seed: 1), Pad), heldOut, config))
        {
            var before = trainer.Evaluate();
            var result = trainer.Train();
            var after = trainer.Evaluate();
            Assert.Equal(0, before["rewards/margins"], 6);
            Assert.True(after["rewards/margins"] > 0.1 && after["rewards/accuracies"] >= 0.9, $"margins {after["rewards/margins"]}, accuracies {after["rewards/accuracies"]}");
            Assert.True(after["loss"] < before["loss"]);
            var eval = result.LogHistory.Last(r => r.IsEval);
            foreach (var name in new[] { "eval_rewards/chosen", "eval_rewards/rejected", "eval_rewards/accuracies", "eval_rewards/margins", "eval_logps/chosen", "eval_logps/rejected" })
                Assert.True(eval.Metrics!.ContainsKey(name), name);
        }
    }

    [Fact]
    public void Reference_can_be_a_frozen_copy_of_an_initial_adapter()
    {
        // TRL: re-training an existing adapter loads a copy under "ref"; the reference is that copy, so at step 1
        // the policy equals the reference even though both differ from the base.
        using var model = CausalLM.FromPretrained(BaseModel);
        var config = PeftAdapter.Load(model, Adapter);
        PeftAdapter.Load(model, Adapter, "ref");
        model.SetActiveAdapters(PeftAdapter.DefaultName);
        using var trainer = new Trainer(model, Options with { MaxSteps = 1 }, Fixtures.TempDirectory(), new DpoObjective(Pairs(), Pad, reference: ReferenceModel.Adapter("ref")), adapterConfig: config);
        Assert.DoesNotContain(trainer.TrainableParameters, p => p.Name.Contains(".ref.", StringComparison.Ordinal));
        var row = trainer.Train().LogHistory.Single();
        Close(Math.Log(2), row.Loss!.Value, 1e-6, "loss with the ref adapter as reference");
    }

    [Fact]
    public void Resume_is_exact()
    {
        var data = VowelPairs(12, seed: 1);
        var options = Options with { SaveSteps = 2 };
        TrainingResult Run(string dir, string? resume, CancellationToken cancel = default, Action<Trainer>? hook = null)
        {
            var (model, config) = LoraModel(dropout: 0.1);
            using (model)
            using (var trainer = new Trainer(model, options, dir, new DpoObjective(data, Pad), adapterConfig: config))
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
        Assert.Equal(6, straight.LogHistory.Count);
        Assert.Equal(straight.LogHistory.Select(r => r.Loss), resumed.LogHistory.Select(r => r.Loss));
        Assert.Equal(straight.LogHistory.Select(r => r.Metrics!["rewards/margins"].ToString()), resumed.LogHistory.Select(r => r.Metrics!["rewards/margins"].ToString()));
        Assert.Equal(0, Training.TrainerFixtures.AdaptersClose(resumedDir, straightDir, 0));
    }

    [Fact]
    public void Native_memory_stays_flat_over_a_long_run()
    {
        var (model, config) = LoraModel();
        var live = new List<long>();
        using (model)
        using (var trainer = new Trainer(model, Options with { MaxSteps = 14, LoggingSteps = 3, SaveSteps = 4 }, Fixtures.TempDirectory(), new DpoObjective(VowelPairs(12, 1), Pad),
                   new DpoObjective(VowelPairs(4, 2), Pad, new DpoOptions { PrecomputeRefLogProbs = true }), config))
        {
            trainer.StepCompleted += _ => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            trainer.Train();
        }

        Assert.Equal(14, live.Count);
        Assert.All(live.Skip(4), n => Assert.Equal(live[3], n));
    }
}
