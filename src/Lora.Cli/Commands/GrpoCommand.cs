using System.CommandLine;
using System.Globalization;
using Lora.Tokenization;
using Lora.Training;
using Lora.Training.Objectives;
using Lora.Training.Objectives.Grpo;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora grpo</c>: Group Relative Policy Optimization on prompts (TRL's <c>GRPOTrainer</c>): num_generations sampled
/// completions per prompt, scored by rule-based functions and/or reward models, group-normalised advantages, TRL's
/// clipped loss with an optional KL term. See docs/alignment.md.
/// </summary>
internal static class GrpoCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new ObjectiveOptions("Prompts: {\"prompt\": text or messages, ...other fields for the rewards} or {\"prompt_input_ids\": [...]}.", learningRate: 1e-6);
        var reference = new ReferenceOptions();
        var rewards = new RewardSourceOptions();
        var generations = new Option<int>("--num-generations") { Description = "Completions sampled per prompt (the group).", DefaultValueFactory = _ => 8 };
        var maxCompletion = new Option<int>("--max-completion-length") { Description = "Tokens generated at most per completion.", DefaultValueFactory = _ => new GrpoOptions().MaxCompletionLength };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature (also applied to the scored logits).", DefaultValueFactory = _ => 1.0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling threshold (1 = off).", DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int>("--top-k") { Description = "Sample from the k most likely tokens (0 = off)." };
        var repetition = new Option<double>("--repetition-penalty") { Description = "Penalty on tokens already present (1 = off).", DefaultValueFactory = _ => 1.0 };
        var beta = new Option<double>("--beta") { Description = "Weight of the per-token KL to the reference (0 = no reference).", DefaultValueFactory = _ => 0.0 };
        var epsilon = new Option<double>("--epsilon") { Description = "Clipping: the ratio is kept in [1 - epsilon, 1 + epsilon-high].", DefaultValueFactory = _ => 0.2 };
        var epsilonHigh = new Option<double?>("--epsilon-high") { Description = "Upper clipping bound (default: --epsilon)." };
        var iterations = new Option<int>("--num-iterations") { Description = "Optimizer steps per generation batch.", DefaultValueFactory = _ => 1 };
        var lossType = new Option<string>("--loss-type") { Description = "dapo (TRL's default), grpo or dr_grpo.", DefaultValueFactory = _ => "dapo" };
        var scale = new Option<string>("--scale-rewards") { Description = "group, batch or none: the std the centred rewards are divided by.", DefaultValueFactory = _ => "group" };
        var maskTruncated = new Option<bool>("--mask-truncated-completions") { Description = "Leave completions that did not end with eos out of the loss." };
        var command = new Command("grpo", "Group Relative Policy Optimization of an adapter against rule-based rewards and/or reward models.")
        {
            generations, maxCompletion, temperature, topP, topK, repetition, beta, epsilon, epsilonHigh, iterations, lossType, scale, maskTruncated,
        };
        common.AddTo(command);
        reference.AddTo(command);
        rewards.AddTo(command);
        command.SetAction(parse =>
        {
            var request = common.Read(parse);
            reference.Check(parse);
            var weights = rewards.Check(parse);
            var options = new GrpoOptions
            {
                NumGenerations = parse.GetValue(generations),
                MaxCompletionLength = parse.GetValue(maxCompletion),
                Temperature = parse.GetValue(temperature),
                TopP = parse.GetValue(topP),
                TopK = parse.GetValue(topK),
                RepetitionPenalty = parse.GetValue(repetition),
                Beta = parse.GetValue(beta),
                Epsilon = parse.GetValue(epsilon),
                EpsilonHigh = parse.GetValue(epsilonHigh),
                NumIterations = parse.GetValue(iterations),
                LossType = parse.GetValue(lossType)!.ToLowerInvariant() switch
                {
                    "dapo" => GrpoLossType.Dapo,
                    "grpo" => GrpoLossType.Grpo,
                    "dr_grpo" => GrpoLossType.DrGrpo,
                    var other => throw new LoraException($"--loss-type '{other}' is not one of dapo, grpo, dr_grpo."),
                },
                ScaleRewards = parse.GetValue(scale)!.ToLowerInvariant() switch
                {
                    "group" => GrpoScaleRewards.Group,
                    "batch" => GrpoScaleRewards.Batch,
                    "none" => GrpoScaleRewards.None,
                    var other => throw new LoraException($"--scale-rewards '{other}' is not one of group, batch, none."),
                },
                MaskTruncatedCompletions = parse.GetValue(maskTruncated),
                EvalSeed = request.Training.Seed,
            };
            options.Validate();
            if (request.Training.BatchSize * request.Training.GradientAccumulationSteps % options.NumGenerations != 0)
                throw new LoraException($"--batch-size {request.Training.BatchSize} × --grad-accum {request.Training.GradientAccumulationSteps} completions per step must be a multiple of --num-generations {options.NumGenerations} (TRL's generation batch).");
            var tokenizer = new Lazy<HfTokenizer>(() => HfTokenizer.Load(request.ModelDir));
            var template = common.ChatTemplate(parse);
            var device = common.StartDevice(parse, ref request, stderr);
            var (model, config, hasCopy) = common.LoadPolicy(parse, request, device, stderr, referenceCopy: options.Beta != 0 && reference.WantsInitCopy(parse, common));
            using (model)
            {
                var (refModel, ownedRef) = options.Beta != 0 ? reference.Build(parse, model, hasCopy, request, device, stderr) : (ReferenceModel.DisabledAdapters, null);
                using (ownedRef)
                {
                    var train = AlignmentData.Prompts(parse.GetValue(common.Data)!, tokenizer, template);
                    var pad = ObjectiveOptions.PadId(tokenizer, model);
                    var (sources, ownedRewards) = rewards.Build(parse, weights, request.ModelDir, request, device, pad, stderr);
                    try
                    {
                        var stop = Stops(tokenizer, model);
                        Func<IReadOnlyList<int>, string>? decode = tokenizer.IsValueCreated ? ids => tokenizer.Value.Decode(ids, skipSpecialTokens: true) : null;
                        var objective = new GrpoObjective(train.Prompts, sources, options, request.Training, pad, stop, decode, refModel);
                        GrpoObjective? eval = null;
                        if (parse.GetValue(common.EvalData) is { } evalPath)
                            eval = new GrpoObjective(AlignmentData.Prompts(evalPath, tokenizer, template).Prompts, sources, options, request.Training, pad, stop, decode, refModel, "evaluation");
                        using var trainer = new Trainer(model, request.Training, request.OutDir, objective, eval, config);
                        var inv = CultureInfo.InvariantCulture;
                        ObjectiveOptions.Run(trainer, model, request, stdout, stderr,
                            $"{train.Prompts.Count.ToString("N0", inv)} prompts, {objective.PromptsPerRollout} per step × {options.NumGenerations} completions, rewards {string.Join(", ", sources.Select(s => $"{s.Name}×{s.Weight.ToString(inv)}"))}, loss {parse.GetValue(lossType)}, beta {options.Beta.ToString(inv)}" + (options.Beta != 0 ? $", reference: {refModel.Description}" : string.Empty),
                            new Dictionary<string, object?> { ["prompts"] = train.Prompts.Count, ["rewards"] = sources.Select(s => s.Name) });
                    }
                    finally
                    {
                        ownedRewards.ForEach(m => m.Dispose());
                    }
                }
            }

            return 0;
        });
        return command;
    }

    /// <summary>The tokens that end a completion: the tokenizer's eos, else the model config's.</summary>
    internal static IReadOnlyList<int> Stops(Lazy<HfTokenizer> tokenizer, Models.CausalLM model) =>
        tokenizer.IsValueCreated && tokenizer.Value.EosTokenId is { } eos ? [eos] : model.Config.EosTokenIds;
}
