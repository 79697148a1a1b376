using Lora.Data.Preference;
using Lora.Models;
using Lora.Training.Objectives.Reward;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Rollout;

/// <summary>What a reward function sees of one sampled completion (TRL passes <c>prompts</c>, <c>completions</c>,
/// <c>completion_ids</c> and the dataset's other columns as keyword arguments).</summary>
/// <param name="Prompt">The prompt, its text and its record (whose other fields, such as an expected answer, are
/// <see cref="PromptRecord.Field"/>).</param>
/// <param name="CompletionIds">The completion's tokens (the stop token included when it stopped on one).</param>
/// <param name="Completion">The completion decoded without special tokens (empty when no tokenizer is known).</param>
public sealed record RewardSample(PromptExample Prompt, IReadOnlyList<int> CompletionIds, string Completion);

/// <summary>A reward written in C#: a number for the completion, or null when the function does not apply to it
/// (TRL's <c>None</c>: left out of that function's mean, and a completion no function scores gets advantage 0).</summary>
public delegate double? RewardFunction(RewardSample sample);

/// <summary>
/// One reward of an online objective: a C# function (<see cref="Function"/>) or a reward model
/// (<see cref="Model"/>, e.g. <c>lora reward</c>'s output loaded with <see cref="RewardModel.Load"/>), with its weight
/// (TRL's <c>reward_weights</c>) and the name its metrics are logged under (<c>rewards/{name}/mean</c>).
/// </summary>
public sealed class RewardSource
{
    private readonly RewardFunction? _function;
    private readonly CausalLM? _model;
    private readonly int _padTokenId;

    private RewardSource(string name, double weight, RewardFunction? function, CausalLM? model, int padTokenId)
    {
        if (string.IsNullOrWhiteSpace(name))
            throw new LoraException("a reward needs a name (its metrics are rewards/{name}/mean).");
        if (!double.IsFinite(weight))
            throw new LoraException($"reward '{name}': the weight must be a finite number (got {weight}).");
        (Name, Weight, _function, _model, _padTokenId) = (name, weight, function, model, padTokenId);
    }

    public string Name { get; }

    public double Weight { get; }

    /// <summary>A reward computed by <paramref name="function"/> for each completion.</summary>
    public static RewardSource Function(string name, RewardFunction function, double weight = 1) =>
        new(name, weight, function ?? throw new ArgumentNullException(nameof(function)), null, 0);

    /// <summary>A reward model's score of <c>prompt + completion</c> (token ids: the reward model must share the
    /// policy's tokenizer; TRL re-tokenises the text, which is the same sequence for a shared tokenizer except for
    /// special tokens). <paramref name="padTokenId"/> is the id the reward model was trained with.</summary>
    public static RewardSource Model(string name, CausalLM rewardModel, int padTokenId, double weight = 1)
    {
        ArgumentNullException.ThrowIfNull(rewardModel);
        if (RewardModel.Find(rewardModel) is null)
            throw new LoraException($"reward '{name}': the model has no score head (load it with RewardModel.Load).");
        return new(name, weight, null, rewardModel, padTokenId);
    }

    /// <summary>The reward of each sample (NaN where a function returned null).</summary>
    public double[] Score(IReadOnlyList<RewardSample> samples, int batchSize = 32)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (_function is not null)
            return samples.Select(s => _function(s) is { } r ? r : double.NaN).ToArray();

        var model = _model!;
        var device = model.parameters().First().device;
        var result = new List<double>(samples.Count);
        var training = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            foreach (var chunk in samples.Chunk(batchSize))
            {
                using var scope = NewDisposeScope();
                var rows = chunk.Select(s => (int[])[.. s.Prompt.PromptIds, .. s.CompletionIds]).ToList();
                var (ids, mask, _) = Padding.Right(rows, _padTokenId);
                var rewards = RewardModel.Rewards(model, ids.to(device), mask.to(device), _padTokenId);
                result.AddRange(rewards.to(ScalarType.Float64).cpu().data<double>().ToArray());
            }
        }
        finally
        {
            if (training)
                model.train();
        }

        return [.. result];
    }
}
