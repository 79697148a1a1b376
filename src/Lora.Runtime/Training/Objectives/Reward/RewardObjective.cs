using Lora.Backend;
using Lora.Data.Preference;
using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Reward;

/// <summary>
/// Reward-model training on preference pairs (TRL's <c>RewardTrainer</c>): each micro-batch is the chosen sequences
/// then the rejected ones (<c>prompt + completion</c>), right-padded (TRL's <c>DataCollatorForPreference</c>); the
/// model must carry a <c>score</c> head (<see cref="RewardModel.AttachScoreHead"/>) trained with its adapter
/// (<see cref="RewardModel.Configure{TConfig}"/>: SEQ_CLS, <c>modules_to_save=["score"]</c>). The loss is
/// <see cref="RewardLoss"/> summed over pairs and divided by the pairs of the whole accumulated batch. Metrics, with
/// TRL's names: <c>accuracy</c> (share of pairs with r_chosen &gt; r_rejected), <c>margin</c> (mean r_chosen −
/// r_rejected), <c>mean_reward</c>; evaluation gives them pair-weighted over the evaluation pairs.
/// </summary>
public sealed class RewardObjective : ITrainingObjective
{
    private readonly List<PreferenceExample> _pairs;
    private readonly int _padTokenId;
    private readonly RewardOptions _options;
    private readonly bool _hasMargin;

    /// <param name="pairs">Tokenised pairs (<see cref="PreferenceDataset"/>).</param>
    /// <param name="padTokenId">Written on padding, and where the reward is read: the rightmost other token.
    /// Use the id a reloaded model's <c>config.pad_token_id</c> will have (TRL sets it to the tokenizer's).</param>
    /// <param name="options">TRL's reward options.</param>
    /// <param name="role">What the data is for, in messages.</param>
    public RewardObjective(IReadOnlyList<PreferenceExample> pairs, int padTokenId, RewardOptions? options = null, string role = "training")
    {
        ArgumentNullException.ThrowIfNull(pairs);
        _options = options ?? new RewardOptions();
        _options.Validate();
        _padTokenId = padTokenId;
        _pairs = pairs.Where(p => _options.MaxLength is not { } max || (p.PromptIds.Length + p.ChosenIds.Length <= max && p.PromptIds.Length + p.RejectedIds.Length <= max)).ToList();
        Dropped = pairs.Count - _pairs.Count;
        if (_pairs.Count == 0)
            throw new LoraException(pairs.Count == 0
                ? $"the {role} data has no preference pairs."
                : $"every {role} pair is longer than max_length {_options.MaxLength} tokens (TRL drops such pairs): raise max_length.");
        _hasMargin = _pairs[0].Margin is not null;
        if (_pairs.FirstOrDefault(p => (p.Margin is not null) != _hasMargin) is { } odd)
            throw new LoraException($"{odd.Location}: {(_hasMargin ? "this pair has no \"margin\" but the first has one" : "this pair has a \"margin\" but the first has none")}; give every pair a margin or none.");
        Lengths = _pairs.Select(p => p.Length).ToArray();
    }

    /// <summary>Pairs left out for being longer than max_length.</summary>
    public int Dropped { get; }

    /// <summary>The pairs trained on.</summary>
    public IReadOnlyList<PreferenceExample> Pairs => _pairs;

    public IReadOnlyList<int> Lengths { get; }

    public IObjectiveBatch Collate(IReadOnlyList<int> indices) => Build(indices.Select(i => _pairs[i]).ToList());

    public ObjectiveLoss Loss(CausalLM model, IObjectiveBatch batch, Device device)
    {
        var b = (PairBatch)batch;
        var (chosen, rejected) = Rewards(model, b, device);
        var loss = RewardLoss.PerPair(chosen, rejected, b.Margin?.CopyTo(device), _options.CenterRewardsCoefficient).sum();
        using var noGrad = no_grad();
        var c = chosen.detach();
        var r = rejected.detach();
        return new ObjectiveLoss(loss, new Dictionary<string, Tensor>
        {
            ["accuracy"] = c.gt(r).to(ScalarType.Float32).sum(),
            ["margin"] = (c - r).sum(),
            ["mean_reward"] = (c + r).sum() / 2,
        });
    }

    public IReadOnlyDictionary<string, double> Evaluate(CausalLM model, Device device, int batchSize)
    {
        double loss = 0, accuracy = 0, margin = 0, mean = 0;
        foreach (var chunk in _pairs.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            using var batch = Build(chunk);
            var (c, r) = Rewards(model, batch, device);
            loss += RewardLoss.PerPair(c, r, batch.Margin?.CopyTo(device), _options.CenterRewardsCoefficient).sum().to(ScalarType.Float64).item<double>();
            accuracy += c.gt(r).sum().to(ScalarType.Float64).item<double>();
            margin += (c - r).sum().to(ScalarType.Float64).item<double>();
            mean += ((c + r).sum() / 2).to(ScalarType.Float64).item<double>();
        }

        var n = (double)_pairs.Count;
        return new Dictionary<string, double> { ["loss"] = loss / n, ["accuracy"] = accuracy / n, ["margin"] = margin / n, ["mean_reward"] = mean / n };
    }

    private (Tensor Chosen, Tensor Rejected) Rewards(CausalLM model, PairBatch batch, Device device)
    {
        var rewards = RewardModel.Rewards(model, batch.InputIds.CopyTo(device), batch.AttentionMask.CopyTo(device), _padTokenId); // (2B)
        var halves = rewards.chunk(2);
        return (halves[0], halves[1]);
    }

    private PairBatch Build(IReadOnlyList<PreferenceExample> pairs)
    {
        var rows = pairs.Select(p => p.ChosenSequence).Concat(pairs.Select(p => p.RejectedSequence)).ToList();
        var (ids, mask, tokens) = Padding.Right(rows, _padTokenId);
        var margin = _hasMargin ? tensor(pairs.Select(p => (float)p.Margin!.Value).ToArray()) : null;
        return new PairBatch(ids, mask, margin, pairs.Count, tokens);
    }

    /// <summary>Chosen rows then rejected rows.</summary>
    private sealed class PairBatch(Tensor inputIds, Tensor attentionMask, Tensor? margin, long pairs, long tokens) : IObjectiveBatch
    {
        public Tensor InputIds { get; } = inputIds;

        public Tensor AttentionMask { get; } = attentionMask;

        public Tensor? Margin { get; } = margin;

        public long Normalizer { get; } = pairs;

        public long InputTokens { get; } = tokens;

        public void Dispose()
        {
            InputIds.Dispose();
            AttentionMask.Dispose();
            Margin?.Dispose();
        }
    }
}
