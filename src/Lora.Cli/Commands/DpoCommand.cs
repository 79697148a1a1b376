using System.CommandLine;
using System.Globalization;
using Lora.Tokenization;
using Lora.Training;
using Lora.Training.Objectives;
using Lora.Training.Objectives.Dpo;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora dpo</c>: Direct Preference Optimization on preference pairs (TRL's <c>DPOTrainer</c>) with an adapter of
/// any PEFT method on a dense or quantized base; the reference is the policy with its adapters disabled (or
/// <c>--ref-adapter</c> / <c>--ref-model</c>, or a frozen copy of <c>--init-adapter</c>). Logs TRL's metrics
/// (<c>rewards/chosen</c>, <c>rewards/margins</c>, …). See docs/alignment.md.
/// </summary>
internal static class DpoCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new ObjectiveOptions("Preference pairs: {\"prompt\"?, \"chosen\", \"rejected\"} as text or conversations, or prompt_input_ids/chosen_input_ids/rejected_input_ids.", learningRate: 1e-6);
        var reference = new ReferenceOptions();
        var beta = new Option<double>("--beta") { Description = "TRL's beta: strength of the KL constraint to the reference.", DefaultValueFactory = _ => 0.1 };
        var lossType = new Option<string>("--loss-type") { Description = "sigmoid (DPO), ipo, hinge or robust.", DefaultValueFactory = _ => "sigmoid" };
        var smoothing = new Option<double>("--label-smoothing") { Description = "robust loss: the assumed share of flipped labels, in [0, 0.5).", DefaultValueFactory = _ => 0 };
        var truncation = new Option<string>("--truncation-mode") { Description = "keep_start or keep_end: which max_length tokens of prompt + completion to keep.", DefaultValueFactory = _ => "keep_start" };
        var precompute = new Option<bool>("--precompute-ref-log-probs") { Description = "Compute the reference log-probs of every pair once, before training." };
        var command = new Command("dpo", "Direct Preference Optimization of an adapter on chosen/rejected pairs.") { beta, lossType, smoothing, truncation, precompute };
        common.AddTo(command);
        reference.AddTo(command);
        command.SetAction(parse =>
        {
            var request = common.Read(parse);
            reference.Check(parse);
            var options = new DpoOptions
            {
                Beta = parse.GetValue(beta),
                LossType = DpoLoss.Parse(parse.GetValue(lossType)!),
                LabelSmoothing = parse.GetValue(smoothing),
                MaxLength = request.Training.MaxLength,
                TruncationMode = parse.GetValue(truncation)!.ToLowerInvariant() switch
                {
                    "keep_start" => DpoTruncation.KeepStart,
                    "keep_end" => DpoTruncation.KeepEnd,
                    var other => throw new LoraException($"--truncation-mode '{other}' is not one of keep_start, keep_end."),
                },
                PrecomputeRefLogProbs = parse.GetValue(precompute),
            };
            options.Validate();
            var tokenizer = new Lazy<HfTokenizer>(() => HfTokenizer.Load(request.ModelDir));
            var template = common.ChatTemplate(parse);
            var device = common.StartDevice(parse, ref request, stderr);
            var (model, config, hasCopy) = common.LoadPolicy(parse, request, device, stderr, referenceCopy: reference.WantsInitCopy(parse, common));
            using (model)
            {
                model.DisableDropout(); // TRL's DPOConfig.disable_dropout = True
                var (refModel, owned) = reference.Build(parse, model, hasCopy, request, device, stderr);
                using (owned)
                {
                    var train = AlignmentData.Pairs(parse.GetValue(common.Data)!, tokenizer, template);
                    var pad = ObjectiveOptions.PadId(tokenizer, model);
                    var objective = new DpoObjective(train.Pairs, pad, options, refModel);
                    DpoObjective? eval = null;
                    if (parse.GetValue(common.EvalData) is { } evalPath)
                        eval = new DpoObjective(AlignmentData.Pairs(evalPath, tokenizer, template).Pairs, pad, options, refModel, "evaluation");
                    foreach (var warning in new[] { train.Stats.Warning, objective.Dropped > 0 ? $"{objective.Dropped} pairs dropped: the prompt fills --max-length {options.MaxLength}." : null, objective.Truncated > 0 ? $"{objective.Truncated} pairs cut to --max-length {options.MaxLength} ({parse.GetValue(truncation)})." : null }.OfType<string>())
                        stderr.WriteLine($"warning: {parse.GetValue(common.Data)}: {warning}");
                    using var trainer = new Trainer(model, request.Training, request.OutDir, objective, eval, config);
                    ObjectiveOptions.Run(trainer, model, request, stdout, stderr,
                        $"{train.Pairs.Count.ToString("N0", CultureInfo.InvariantCulture)} pairs, loss {DpoLoss.Name(options.LossType)}, beta {options.Beta.ToString(CultureInfo.InvariantCulture)}, reference: {refModel.Description}",
                        new Dictionary<string, object?> { ["pairs"] = train.Pairs.Count - objective.Dropped, ["reference"] = refModel.Description });
                }
            }

            return 0;
        });
        return command;
    }
}
