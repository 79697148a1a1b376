using System.CommandLine;
using System.Globalization;
using Lora.Data.Preference;
using Lora.Tokenization;
using Lora.Training;
using Lora.Training.Objectives;
using Lora.Training.Objectives.Reward;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora reward</c>: trains a reward model on preference pairs (TRL's <c>RewardTrainer</c>): a <c>score</c> head on
/// the causal LM and an adapter of <c>--method</c>, saved as a PEFT SEQ_CLS adapter (<c>modules_to_save=["score"]</c>)
/// that <c>lora score</c>, <c>lora ppo</c> / <c>grpo --reward-model</c> and Python's
/// <c>AutoModelForSequenceClassification</c> + PEFT load. See docs/alignment.md.
/// </summary>
internal static class RewardCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new ObjectiveOptions("Preference pairs: {\"prompt\"?, \"chosen\", \"rejected\", \"margin\"?} as text or conversations, or chosen_input_ids/rejected_input_ids.", learningRate: 1e-4);
        var center = new Option<double?>("--center-rewards-coefficient") { Description = "TRL's center_rewards_coefficient: adds c·mean((r_chosen + r_rejected)²) (default: none)." };
        var command = new Command("reward", "Train a reward model (score head + adapter) on chosen/rejected pairs.") { center };
        common.AddTo(command);
        command.SetAction(parse =>
        {
            var request = common.Read(parse);
            var options = new RewardOptions { MaxLength = request.Training.MaxLength, CenterRewardsCoefficient = parse.GetValue(center) };
            options.Validate();
            var tokenizer = new Lazy<HfTokenizer>(() => HfTokenizer.Load(request.ModelDir));
            var template = common.ChatTemplate(parse);
            var device = common.StartDevice(parse, ref request, stderr);
            var (model, config, _) = common.LoadPolicy(parse, request, device, stderr, m => RewardModel.AttachScoreHead(m), RewardModel.Configure);
            using (model)
            {
                model.DisableDropout(); // TRL's RewardConfig.disable_dropout = True
                var train = AlignmentData.Pairs(parse.GetValue(common.Data)!, tokenizer, template);
                var pad = ObjectiveOptions.PadId(tokenizer, model);
                var objective = new RewardObjective(train.Pairs, pad, options);
                RewardObjective? eval = null;
                if (parse.GetValue(common.EvalData) is { } evalPath)
                    eval = new RewardObjective(AlignmentData.Pairs(evalPath, tokenizer, template).Pairs, pad, options, "evaluation");
                var info = request.Json ? stderr : stdout;
                foreach (var warning in new[] { train.Stats.Warning, objective.Dropped > 0 ? $"{objective.Dropped} pairs longer than --max-length {options.MaxLength} dropped (TRL filters them)." : null }.OfType<string>())
                    stderr.WriteLine($"warning: {parse.GetValue(common.Data)}: {warning}");
                using var trainer = new Trainer(model, request.Training, request.OutDir, objective, eval, config);
                ObjectiveOptions.Run(trainer, model, request, stdout, stderr,
                    $"{objective.Pairs.Count.ToString("N0", CultureInfo.InvariantCulture)} pairs, pad id {pad}",
                    new Dictionary<string, object?> { ["pairs"] = objective.Pairs.Count, ["dropped"] = objective.Dropped, ["pad_token_id"] = pad });
            }

            return 0;
        });
        return command;
    }
}
