using System.CommandLine;
using System.Globalization;
using Lora.Models;
using Lora.Training.Objectives.Reward;
using Lora.Training.Objectives.Rollout;

namespace Lora.Cli.Commands;

/// <summary>
/// The rewards of the online commands: built-in rule-based functions (<c>--reward-func exact_answer</c>, …, over the
/// prompt records' <c>--answer-field</c>) and reward models (<c>--reward-model DIR</c>: <c>lora reward</c>'s output on
/// <c>--reward-base</c>, default the policy's base), weighted by <c>--reward-weights</c> in that order (TRL's
/// <c>reward_funcs</c> and <c>reward_weights</c>). From C#, any <see cref="RewardFunction"/> is a reward.
/// </summary>
internal sealed class RewardSourceOptions
{
    public readonly Option<string[]> Functions = new("--reward-func") { Description = $"A built-in reward function (repeatable): {string.Join(", ", BuiltInRewards.Names)}.", AllowMultipleArgumentsPerToken = false };
    public readonly Option<string[]> Models = new("--reward-model") { Description = "A reward model adapter directory (lora reward's --out; repeatable).", AllowMultipleArgumentsPerToken = false };
    public readonly Option<string?> RewardBase = new("--reward-base") { Description = "The base model of the reward models (default: --model)." };
    public readonly Option<string?> Weights = new("--reward-weights") { Description = "Comma-separated weights, one per reward: functions first, then models (default: all 1)." };
    public readonly Option<string> AnswerField = new("--answer-field") { Description = "The prompt records' field the built-in functions compare with.", DefaultValueFactory = _ => "answer" };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Functions, Models, RewardBase, Weights, AnswerField })
            command.Options.Add(option);
    }

    /// <summary>Checks the options before anything loads; returns the weights.</summary>
    public double[] Check(ParseResult parse, int maxSources = int.MaxValue)
    {
        var functions = parse.GetValue(Functions) ?? [];
        var models = parse.GetValue(Models) ?? [];
        var count = functions.Length + models.Length;
        if (count == 0)
            throw new LoraException("give a reward: --reward-func NAME or --reward-model DIR.");
        if (count > maxSources)
            throw new LoraException($"this command takes one reward (--reward-func or --reward-model), got {count}.");
        foreach (var f in functions)
            BuiltInRewards.Create(f); // unknown names fail here
        foreach (var m in models)
        {
            if (!Directory.Exists(m))
                throw new LoraException($"{m}: reward model directory not found.");
        }

        if (parse.GetValue(Weights) is not { } text)
            return Enumerable.Repeat(1.0, count).ToArray();
        var weights = text.Split(',', StringSplitOptions.TrimEntries).Select(w => double.TryParse(w, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
            ? v
            : throw new LoraException($"--reward-weights: '{w}' is not a number.")).ToArray();
        if (weights.Length != count)
            throw new LoraException($"--reward-weights has {weights.Length} weights for {count} rewards (functions first, then models).");
        return weights;
    }

    /// <summary>The reward sources; the reward models loaded are returned to be disposed.</summary>
    public (List<RewardSource> Sources, List<CausalLM> Owned) Build(ParseResult parse, double[] weights, string modelDir, ObjectiveOptions.Request request, TorchSharp.torch.Device device, int padTokenId, TextWriter stderr)
    {
        var sources = new List<RewardSource>();
        var owned = new List<CausalLM>();
        var i = 0;
        foreach (var f in parse.GetValue(Functions) ?? [])
            sources.Add(BuiltInRewards.Create(f, parse.GetValue(AnswerField)!, weights[i++]));
        try
        {
            foreach (var dir in parse.GetValue(Models) ?? [])
            {
                var rm = RewardModel.Load(parse.GetValue(RewardBase) ?? modelDir, dir, device, request.Training.Bf16 ? TorchSharp.torch.ScalarType.BFloat16 : TorchSharp.torch.ScalarType.Float32,
                    request.Quantization, w => stderr.WriteLine($"warning: {w}"));
                owned.Add(rm);
                var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
                sources.Add(RewardSource.Model(sources.Any(s => s.Name == name) ? $"{name}_{i}" : name, rm, padTokenId, weights[i++]));
            }
        }
        catch
        {
            owned.ForEach(m => m.Dispose());
            throw;
        }

        return (sources, owned);
    }
}
