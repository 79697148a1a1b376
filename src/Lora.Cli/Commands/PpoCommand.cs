using System.CommandLine;
using System.Globalization;
using Lora.Peft;
using Lora.Tokenization;
using Lora.Training;
using Lora.Training.Objectives;
using Lora.Training.Objectives.Ppo;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora ppo</c>: PPO against a reward model (<c>lora reward</c>'s output) or a built-in rule-based reward, as TRL's
/// experimental <c>PPOTrainer</c>: a value head on the policy, the per-token KL penalty to the reference, GAE,
/// clipped policy and value losses over num_ppo_epochs × num_mini_batches steps per rollout. Writes the policy
/// adapter and <c>value_head.safetensors</c>. See docs/alignment.md.
/// </summary>
internal static class PpoCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new ObjectiveOptions("Prompts: {\"prompt\": text or messages, ...} or {\"prompt_input_ids\": [...]}.", learningRate: 3e-6);
        var reference = new ReferenceOptions();
        var rewards = new RewardSourceOptions();
        var epochs = new Option<int>("--num-ppo-epochs") { Description = "Passes over each rollout.", DefaultValueFactory = _ => 4 };
        var miniBatches = new Option<int>("--num-mini-batches") { Description = "Optimizer steps per pass (must divide --grad-accum).", DefaultValueFactory = _ => 1 };
        var klCoef = new Option<double>("--kl-coef") { Description = "Weight of the per-token KL penalty.", DefaultValueFactory = _ => 0.05 };
        var klEstimator = new Option<string>("--kl-estimator") { Description = "k1 or k3.", DefaultValueFactory = _ => "k1" };
        var cliprange = new Option<double>("--cliprange") { Description = "Clip of the policy ratio.", DefaultValueFactory = _ => 0.2 };
        var vfCoef = new Option<double>("--vf-coef") { Description = "Weight of the value loss.", DefaultValueFactory = _ => 0.1 };
        var cliprangeValue = new Option<double>("--cliprange-value") { Description = "Clip of the value predictions.", DefaultValueFactory = _ => 0.2 };
        var gamma = new Option<double>("--gamma") { Description = "Discount.", DefaultValueFactory = _ => 1.0 };
        var lam = new Option<double>("--lam") { Description = "GAE lambda.", DefaultValueFactory = _ => 0.95 };
        var whiten = new Option<bool>("--whiten-rewards") { Description = "Whiten the per-token rewards before GAE." };
        var responseLength = new Option<int>("--response-length") { Description = "Tokens generated per response.", DefaultValueFactory = _ => 53 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature (also applied to the scored logits).", DefaultValueFactory = _ => 0.7 };
        var stopToken = new Option<string?>("--stop-token") { Description = "eos: stop a response at eos (TRL's default is none: responses run to --response-length)." };
        var missingEos = new Option<double?>("--missing-eos-penalty") { Description = "Subtracted from the score of a response without eos." };
        var critic = new Option<string>("--critic") { Description = "separate: the value head reads its own adapter of the same base (TRL's PPOTrainer: a separate value model), so the value loss never moves the policy; shared: the policy's hidden states (TRL's legacy AutoModelForCausalLMWithValueHead).", DefaultValueFactory = _ => "separate" };
        var command = new Command("ppo", "PPO of an adapter (with a value head) against a reward model or a rule-based reward.")
        {
            epochs, miniBatches, klCoef, klEstimator, cliprange, vfCoef, cliprangeValue, gamma, lam, whiten, responseLength, temperature, stopToken, missingEos, critic,
        };
        common.AddTo(command);
        reference.AddTo(command);
        rewards.AddTo(command);
        command.SetAction(parse =>
        {
            var request = common.Read(parse);
            reference.Check(parse);
            var weights = rewards.Check(parse, maxSources: 1);
            var options = new PpoOptions
            {
                NumPpoEpochs = parse.GetValue(epochs),
                NumMiniBatches = parse.GetValue(miniBatches),
                KlCoef = parse.GetValue(klCoef),
                KlEstimator = parse.GetValue(klEstimator)!.ToLowerInvariant() switch
                {
                    "k1" => KlEstimator.K1,
                    "k3" => KlEstimator.K3,
                    var other => throw new LoraException($"--kl-estimator '{other}' is not one of k1, k3."),
                },
                Cliprange = parse.GetValue(cliprange),
                VfCoef = parse.GetValue(vfCoef),
                CliprangeValue = parse.GetValue(cliprangeValue),
                Gamma = parse.GetValue(gamma),
                Lam = parse.GetValue(lam),
                WhitenRewards = parse.GetValue(whiten),
                ResponseLength = parse.GetValue(responseLength),
                Temperature = parse.GetValue(temperature),
                StopAtEos = parse.GetValue(stopToken) switch
                {
                    null => false,
                    "eos" => true,
                    var other => throw new LoraException($"--stop-token '{other}' is not eos (TRL's only stop token)."),
                },
                MissingEosPenalty = parse.GetValue(missingEos),
                EvalSeed = request.Training.Seed,
            };
            options.Validate();
            var separateCritic = parse.GetValue(critic)!.ToLowerInvariant() switch
            {
                "separate" => true,
                "shared" => false,
                var other => throw new LoraException($"--critic '{other}' is not one of separate, shared."),
            };
            if (request.Training.GradientAccumulationSteps % options.NumMiniBatches != 0)
                throw new LoraException($"--num-mini-batches {options.NumMiniBatches} must divide --grad-accum {request.Training.GradientAccumulationSteps}: a mini-batch is whole micro-batches of --batch-size.");
            var tokenizer = new Lazy<HfTokenizer>(() => HfTokenizer.Load(request.ModelDir));
            var template = common.ChatTemplate(parse);
            var device = common.StartDevice(parse, ref request, stderr);
            var (model, config, hasCopy) = common.LoadPolicy(parse, request, device, stderr, referenceCopy: reference.WantsInitCopy(parse, common));
            using (model)
            {
                var init = parse.GetValue(common.InitAdapter);
                // A PPO output trained further keeps its critic. A separate critic otherwise starts, as TRL's PPO script
                // builds its value model, from the reward model when it is an adapter on this base; else from the
                // initial adapter (the policy's features); else fresh with the policy's config.
                var previous = init is not null && File.Exists(Path.Combine(init, ValueHead.FileName)) ? init : null;
                var previousCritic = previous is not null && Directory.Exists(PeftAdapter.DirectoryFor(previous, ValueHead.CriticAdapterName))
                    ? PeftAdapter.DirectoryFor(previous, ValueHead.CriticAdapterName) : null;
                var rewardModel = parse.GetValue(rewards.RewardBase) is null && parse.GetValue(rewards.Models) is [var only] ? only : null;
                var head = !separateCritic ? ValueHead.Attach(model)
                    : previousCritic is not null ? ValueHead.AttachSeparate(model, config, previousCritic)
                    : rewardModel is not null ? ValueHead.AttachFromRewardModel(model, rewardModel)
                    : ValueHead.AttachSeparate(model, config, init);
                if (previous is not null)
                    head.LoadHeadOnly(previous);
                model.DisableDropout(); // TRL's PPOTrainer disables dropout in every model (the critic's adapter too)
                var (refModel, ownedRef) = reference.Build(parse, model, hasCopy, request, device, stderr);
                using (ownedRef)
                {
                    var train = AlignmentData.Prompts(parse.GetValue(common.Data)!, tokenizer, template);
                    var pad = ObjectiveOptions.PadId(tokenizer, model);
                    var (sources, ownedRewards) = rewards.Build(parse, weights, request.ModelDir, request, device, pad, stderr);
                    try
                    {
                        var stops = GrpoCommand.Stops(tokenizer, model);
                        int? eos = stops.Count > 0 ? stops[0] : null;
                        Func<IReadOnlyList<int>, string>? decode = tokenizer.IsValueCreated ? ids => tokenizer.Value.Decode(ids, skipSpecialTokens: true) : null;
                        using var objective = new PpoObjective(train.Prompts, sources[0], options, request.Training, head, pad, eos, decode, refModel);
                        using var eval = parse.GetValue(common.EvalData) is { } evalPath
                            ? new PpoObjective(AlignmentData.Prompts(evalPath, tokenizer, template).Prompts, sources[0], options, request.Training, head, pad, eos, decode, refModel, "evaluation")
                            : null;
                        using var trainer = new Trainer(model, request.Training, request.OutDir, objective, eval, config);
                        var inv = CultureInfo.InvariantCulture;
                        ObjectiveOptions.Run(trainer, model, request, stdout, stderr,
                            $"{train.Prompts.Count.ToString("N0", inv)} prompts, {objective.PromptsPerRollout} per rollout, {objective.StepsPerRollout} steps per rollout, reward {sources[0].Name}, kl_coef {options.KlCoef.ToString(inv)}, reference: {refModel.Description}",
                            new Dictionary<string, object?>
                            {
                                ["prompts"] = train.Prompts.Count,
                                ["value_head"] = Path.GetFullPath(Path.Combine(request.OutDir, ValueHead.FileName)),
                                ["critic_adapter"] = head.CriticAdapter is { } name ? Path.GetFullPath(PeftAdapter.DirectoryFor(request.OutDir, name)) : null,
                            });
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
}
