using Lora.Backend;
using Lora.Data;
using Lora.Data.Preference;
using Lora.Generation;
using Lora.Models;
using Lora.Training.Objectives.Rollout;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Ppo;

/// <summary>
/// Proximal Policy Optimization as TRL's experimental <c>PPOTrainer</c> runs it (<c>trl/experimental/ppo/ppo_trainer.py</c>),
/// as a <see cref="IRolloutObjective"/>. With B = per-device batch size, A = gradient accumulation steps, M =
/// <c>num_mini_batches</c>, E = <c>num_ppo_epochs</c>:
/// <code>
///   rollout (TRL's "update"): B·A prompts (batch_size), one sampled response each (temperature, response_length,
///            optionally stopping at eos); log-probs of the policy and the reference, values of the value head, the
///            score of the reward (a reward model or a C# function) → <see cref="PpoMath.Process"/>
///   steps:   E epochs × M mini-batches of B·A/M responses (a fresh seeded shuffle per epoch), each one optimizer
///            step over its A/M micro-batches of B
///   loss:    <see cref="PpoMath.Loss"/> per micro-batch (pg_loss + vf_coef · vf_loss), averaged over the mini-batch
/// </code>
/// Logged under TRL's names: <c>objective/kl</c>, <c>objective/entropy</c>, <c>objective/non_score_reward</c>,
/// <c>objective/rlhf_reward</c>, <c>objective/scores</c>, <c>val/num_eos_tokens</c> (per rollout) and
/// <c>policy/approxkl_avg</c>, <c>policy/clipfrac_avg</c>, <c>loss/policy_avg</c>, <c>loss/value_avg</c>,
/// <c>val/clipfrac_avg</c>, <c>policy/entropy_avg</c>, <c>val/ratio</c> (per optimizer step).
/// Differences from TRL: the trainer's step is the optimizer step (TRL's <c>global_step</c>, learning-rate schedule
/// and logging count rollouts); every mini-batch is one optimizer step (TRL's accelerate accumulation steps once per
/// A micro-batches, which is the same only for M = 1, its default); the critic is a value head on its own adapter of
/// the same base (<see cref="ValueHead.AttachSeparate"/>; or on the policy's hidden states, <see cref="ValueHead.Attach"/>);
/// the trainer's gradient clipping applies.
/// </summary>
public sealed class PpoObjective : IRolloutObjective, IObjectiveParameters, IDisposable
{
    private readonly IReadOnlyList<PromptExample> _prompts;
    private readonly RewardSource _reward;
    private readonly PpoOptions _options;
    private readonly ValueHead _valueHead;
    private readonly int _padTokenId;
    private readonly int? _eosTokenId;
    private readonly int _batchSize;
    private readonly int _microPerMini;
    private readonly Func<IReadOnlyList<int>, string>? _decode;
    private readonly ReferenceModel _reference;
    private State? _state;

    /// <param name="prompts">Tokenised prompts (<see cref="PromptDataset"/>).</param>
    /// <param name="reward">The score of a response (a reward model or a C# function).</param>
    /// <param name="options">TRL's PPO options.</param>
    /// <param name="training">The trainer's options: batch size and gradient accumulation give TRL's batch arithmetic.</param>
    /// <param name="valueHead">The critic, attached to the model (<see cref="ValueHead.AttachSeparate"/> or <see cref="ValueHead.Attach"/>).</param>
    /// <param name="padTokenId">Written on padding.</param>
    /// <param name="eosTokenId">The eos token (stop token with <see cref="PpoOptions.StopAtEos"/>; the missing-eos
    /// penalty and <c>val/num_eos_tokens</c> look for it).</param>
    /// <param name="decode">Decodes a response for reward functions (skip special tokens).</param>
    /// <param name="reference">The reference policy (default: adapters disabled).</param>
    /// <param name="role">What the prompts are for, in messages.</param>
    public PpoObjective(IReadOnlyList<PromptExample> prompts, RewardSource reward, PpoOptions options, TrainingOptions training, ValueHead valueHead,
        int padTokenId, int? eosTokenId, Func<IReadOnlyList<int>, string>? decode = null, ReferenceModel? reference = null, string role = "training")
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(training);
        options.Validate();
        if (prompts.Count == 0)
            throw new LoraException($"the {role} data has no prompts.");
        (_prompts, _reward, _options, _valueHead, _padTokenId, _eosTokenId, _decode) =
            (prompts, reward ?? throw new ArgumentNullException(nameof(reward)), options, valueHead ?? throw new ArgumentNullException(nameof(valueHead)), padTokenId, eosTokenId, decode);
        _reference = reference ?? ReferenceModel.DisabledAdapters;
        _batchSize = training.BatchSize;
        var accumulation = training.GradientAccumulationSteps;
        if (accumulation % options.NumMiniBatches != 0)
            throw new LoraException($"num_mini_batches {options.NumMiniBatches} must divide the gradient accumulation steps {accumulation}: a mini-batch is whole micro-batches of {_batchSize} (TRL: batch_size must be a multiple of num_mini_batches).");
        if (options.StopAtEos && eosTokenId is null)
            throw new LoraException("stopping at eos needs an eos token (the tokenizer's or config.json's).");
        _microPerMini = accumulation / options.NumMiniBatches;
        if (options.WhitenRewards && _batchSize * _microPerMini < 8)
            throw new LoraException($"whiten_rewards needs mini-batches of at least 8 responses (got {_batchSize * _microPerMini}), as TRL asserts.");
        PromptsPerRollout = _batchSize * accumulation;
        Lengths = prompts.Select(p => p.PromptIds.Length).ToArray();
    }

    public IReadOnlyList<int> Lengths { get; }

    public int PromptsPerRollout { get; }

    public int StepsPerRollout => _options.NumPpoEpochs * _options.NumMiniBatches;

    public PpoOptions Options => _options;

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters => _valueHead.TrainableParameters;

    public void Save(string directory) => _valueHead.Save(directory);

    public void Load(string directory) => _valueHead.Load(directory);

    /// <summary>A rollout's responses and TRL's processed tensors (detached, on the model's device).</summary>
    private sealed class State(List<int[]> prompts, List<int[]> responses, PpoRollout rollout, long seed) : IDisposable
    {
        public List<int[]> Prompts { get; } = prompts;

        public List<int[]> Responses { get; } = responses;

        public PpoRollout Rollout { get; } = rollout;

        public long Seed { get; } = seed;

        public void Dispose() => Rollout.Dispose();
    }

    public IReadOnlyDictionary<string, double> Rollout(CausalLM model, IReadOnlyList<int> prompts, Device device, long seed)
    {
        var (state, metrics) = Generate(model, prompts.Select(i => _prompts[i]).ToList(), device, seed);
        _state?.Dispose();
        _state = state;
        return metrics;
    }

    public IReadOnlyList<int[]> StepUnits(int stepInRollout)
    {
        var state = _state ?? throw new InvalidOperationException("no rollout yet: the trainer calls Rollout first.");
        // A fresh shuffle per PPO epoch (TRL: np.random.permutation), seeded by the rollout and the epoch.
        var epoch = stepInRollout / _options.NumMiniBatches;
        var mini = stepInRollout % _options.NumMiniBatches;
        var order = new SplitMix64((ulong)state.Seed ^ (0x9E37UL * (ulong)(epoch + 1))).Permutation(state.Responses.Count);
        var size = _batchSize * _microPerMini;
        return order.Skip(mini * size).Take(size).Chunk(_batchSize).Select(c => c.ToArray()).ToList();
    }

    public IObjectiveBatch Collate(IReadOnlyList<int> indices)
    {
        var state = _state ?? throw new InvalidOperationException("no rollout yet.");
        return Build(state, indices);
    }

    public ObjectiveLoss Loss(CausalLM model, IObjectiveBatch batch, Device device)
    {
        var b = (PpoBatch)batch;
        var ids = b.Layout.InputIds.CopyTo(device);
        var mask = b.Layout.AttentionMask.CopyTo(device);
        var hidden = model.HiddenStates(ids, mask);                                                           // (B, P + C, H)
        var logits = b.Layout.CompletionLogits(model.LogitsOf(hidden), _options.Temperature);              // (B, C, V)
        var newLogprobs = TokenLogProbs.Of(logits, b.Layout.CompletionIds.CopyTo(device));
        var p = b.Layout.PromptWidth;
        var values = _valueHead.Values(model, hidden, ids, mask, p - 1, b.Layout.CompletionWidth);          // value of the state before each token
        var r = _state!.Rollout;
        var rows = b.Rows.CopyTo(device);
        var loss = PpoMath.Loss(newLogprobs, r.Logprobs.index_select(0, rows), r.Advantages.index_select(0, rows), values, r.Values.index_select(0, rows),
            r.Returns.index_select(0, rows), r.PaddingMask.index_select(0, rows), r.PaddingMaskP1.index_select(0, rows), _options);
        using var noGrad = no_grad();
        return new ObjectiveLoss(loss.Loss, new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["policy/approxkl_avg"] = loss.ApproxKl,
            ["policy/clipfrac_avg"] = loss.PolicyClipFraction,
            ["loss/policy_avg"] = loss.PolicyLoss.detach(),
            ["loss/value_avg"] = loss.ValueLoss.detach(),
            ["val/clipfrac_avg"] = loss.ValueClipFraction,
            ["policy/entropy_avg"] = TokenLogProbs.Entropy(logits.detach()).mean(),
            ["val/ratio"] = loss.RatioMean,
        });
    }

    /// <summary>A rollout on the evaluation prompts (seeded with <see cref="PpoOptions.EvalSeed"/>) and its
    /// <c>objective/*</c> metrics. TRL's PPO has no evaluation loss; <c>loss</c> here is −objective/rlhf_reward, the
    /// quantity PPO maximises.</summary>
    public IReadOnlyDictionary<string, double> Evaluate(CausalLM model, Device device, int batchSize)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        double weight = 0;
        foreach (var chunk in _prompts.Chunk(Math.Max(batchSize, 1) * 8))
        {
            var (state, metrics) = Generate(model, chunk, device, _options.EvalSeed);
            state.Dispose();
            foreach (var (name, value) in metrics)
                result[name] = result.GetValueOrDefault(name) + value * chunk.Length;
            weight += chunk.Length;
        }

        var averaged = result.ToDictionary(m => m.Key, m => m.Value / weight, StringComparer.Ordinal);
        return new Dictionary<string, double>(StringComparer.Ordinal) { ["loss"] = -averaged["objective/rlhf_reward"] }
            .Concat(averaged).ToDictionary(m => m.Key, m => m.Value, StringComparer.Ordinal);
    }

    public void Dispose()
    {
        _state?.Dispose();
        _state = null;
    }

    private (State State, Dictionary<string, double> Metrics) Generate(CausalLM model, IReadOnlyList<PromptExample> prompts, Device device, long seed)
    {
        var generation = new GenerationOptions
        {
            MaxNewTokens = _options.ResponseLength,
            DoSample = true,
            Temperature = _options.Temperature + 1e-7,   // TRL: temperature + 1e-7, top_k 0, top_p 1
            StopTokenIds = _options.StopAtEos ? [_eosTokenId!.Value] : [],
            Seed = seed,
        };
        var generated = Sampling.Sample(model, prompts.Select(p => p.PromptIds).ToList(), generation, _padTokenId, seed);
        var responses = generated.Select(g => g.Tokens.Count > 0 ? g.Tokens.ToArray() : [_padTokenId]).ToList();
        var promptIds = prompts.Select(p => p.PromptIds).ToList();

        var scores = _reward.Score(prompts.Zip(generated, (p, g) => new RewardSample(p, g.Tokens, _decode?.Invoke(g.Tokens) ?? string.Empty)).ToList());
        var width = responses.Max(r => r.Length);
        var logprobs = new List<Tensor>();
        var refLogprobs = new List<Tensor>();
        var values = new List<Tensor>();
        using var scope = NewDisposeScope();
        foreach (var chunk in Enumerable.Range(0, prompts.Count).Chunk(_batchSize))
        {
            using var layout = Layout(promptIds, responses, chunk, width);
            var ids = layout.InputIds.CopyTo(device);
            var mask = layout.AttentionMask.CopyTo(device);
            var targets = layout.CompletionIds.CopyTo(device);
            var hidden = model.HiddenStates(ids, mask);
            logprobs.Add(TokenLogProbs.Of(layout.CompletionLogits(model.LogitsOf(hidden), _options.Temperature), targets));
            var p = layout.PromptWidth;
            values.Add(_valueHead.Values(model, hidden, ids, mask, p - 1, width));
            refLogprobs.Add(TokenLogProbs.Of(layout.CompletionLogits(_reference.Run(model, m => m.Forward(ids, mask)), _options.Temperature), targets));
        }

        var responseTensor = tensor(responses.SelectMany(r => r.Concat(Enumerable.Repeat(_padTokenId, width - r.Length))).Select(t => (long)t).ToArray(), [responses.Count, width], device: device);
        var rollout = PpoMath.Process(responseTensor, cat(logprobs, 0), cat(refLogprobs, 0), cat(values, 0), tensor(scores, device: device).to(ScalarType.Float32),
            _options, _padTokenId, _eosTokenId);
        foreach (var t in new[] { rollout.Logprobs, rollout.RefLogprobs, rollout.Values, rollout.PaddingMask, rollout.PaddingMaskP1, rollout.Kl, rollout.NonScoreReward, rollout.Rewards, rollout.Advantages, rollout.Returns, rollout.Scores })
            t.DetachFromDisposeScope();

        var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["objective/kl"] = rollout.Kl.sum(1).mean().to(ScalarType.Float64).item<double>(),
            ["objective/entropy"] = (-rollout.Logprobs).sum(1).mean().to(ScalarType.Float64).item<double>(),
            ["objective/non_score_reward"] = rollout.NonScoreReward.sum(1).mean().to(ScalarType.Float64).item<double>(),
            ["objective/scores"] = rollout.Scores.mean().to(ScalarType.Float64).item<double>(),
            ["val/num_eos_tokens"] = _eosTokenId is { } eos ? responses.Sum(r => r.Count(t => t == eos)) : 0,
        };
        metrics["objective/rlhf_reward"] = metrics["objective/non_score_reward"] + metrics["objective/scores"];
        return (new State(promptIds, responses, rollout, seed), metrics);
    }

    /// <summary>Rows <paramref name="rows"/>: prompt left-padded, response padded to <paramref name="width"/> with the
    /// pad id (TRL's <c>query_responses</c>), attention on real tokens only.</summary>
    private CompletionBatch Layout(List<int[]> prompts, List<int[]> responses, IReadOnlyList<int> rows, int width)
    {
        var layout = CompletionBatch.Build(rows.Select(i => prompts[i]).ToList(), rows.Select(i => (IReadOnlyList<int>)responses[i]).ToList(), _padTokenId, width);
        return layout;
    }

    private PpoBatch Build(State state, IReadOnlyList<int> indices)
    {
        var width = (int)state.Rollout.Logprobs.shape[1];
        var layout = Layout(state.Prompts, state.Responses, indices, width);
        return new PpoBatch(layout, tensor(indices.Select(i => (long)i).ToArray()));
    }

    private sealed class PpoBatch(CompletionBatch layout, Tensor rows) : IObjectiveBatch
    {
        public CompletionBatch Layout { get; } = layout;

        /// <summary>Indices of the batch's responses in the rollout.</summary>
        public Tensor Rows { get; } = rows;

        /// <summary>TRL's loss is each micro-batch's masked mean; the mini-batch's gradient is their mean.</summary>
        public long Normalizer => 1;

        public long InputTokens => Layout.RealTokens;

        public void Dispose()
        {
            Layout.Dispose();
            Rows.Dispose();
        }
    }
}
