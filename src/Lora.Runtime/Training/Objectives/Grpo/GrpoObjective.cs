using Lora.Backend;
using Lora.Data;
using Lora.Data.Preference;
using Lora.Generation;
using Lora.Models;
using Lora.Training.Objectives.Rollout;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Grpo;

/// <summary>
/// Group Relative Policy Optimization (TRL's <c>GRPOTrainer</c>, <c>trl/trainer/grpo_trainer.py</c>) as a
/// <see cref="IRolloutObjective"/>. TRL's batch arithmetic, with B = per-device batch size (completions per
/// micro-batch), A = gradient accumulation steps (= TRL's default <c>steps_per_generation</c>), G =
/// <c>num_generations</c>:
/// <code>
///   rollout: B·A/G prompts, each sampled G times (a group)    generation_batch_size = B·A
///            rewards of every source (C# functions, reward models), weighted → group-normalised advantages
///            (beta ≠ 0: reference log-probs; num_iterations &gt; 1: the sampling policy's log-probs)
///            shuffled once, cut into A micro-batches of B completions
///   step:    the A micro-batches (the same ones for each of the num_iterations steps of the rollout)
///   loss:    <see cref="GrpoMath.PerTokenLoss"/> over completion tokens; dapo Σ/tokens of the generation batch,
///            grpo Σ_seq mean_t / sequences, dr_grpo Σ/(sequences · max_completion_length)
/// </code>
/// Metrics under TRL's names: <c>reward</c>, <c>reward_std</c>, <c>rewards/{name}/mean</c>, <c>rewards/{name}/std</c>,
/// <c>frac_reward_zero_std</c>, <c>completions/mean_length</c>, <c>completions/clipped_ratio</c>, <c>kl</c> (β ≠ 0),
/// <c>entropy</c>, <c>clip_ratio/low_mean</c>, <c>clip_ratio/high_mean</c>, <c>clip_ratio/region_mean</c>.
/// </summary>
public sealed class GrpoObjective : IRolloutObjective
{
    private readonly IReadOnlyList<PromptExample> _prompts;
    private readonly IReadOnlyList<RewardSource> _rewards;
    private readonly GrpoOptions _options;
    private readonly int _padTokenId;
    private readonly IReadOnlyList<int> _stopTokenIds;
    private readonly int _batchSize;
    private readonly int _accumulation;
    private readonly Func<IReadOnlyList<int>, string>? _decode;
    private readonly ReferenceModel _reference;
    private Buffer? _buffer;

    /// <param name="prompts">Tokenised prompts (<see cref="PromptDataset"/>).</param>
    /// <param name="rewards">The rewards, weighted (at least one).</param>
    /// <param name="options">TRL's GRPO options.</param>
    /// <param name="training">The trainer's options: their batch size (completions per micro-batch) and gradient
    /// accumulation give TRL's batch arithmetic.</param>
    /// <param name="padTokenId">Written on padding.</param>
    /// <param name="stopTokenIds">Tokens that end a completion (eos).</param>
    /// <param name="decode">Decodes a completion for the reward functions (skip special tokens); null gives them
    /// empty text.</param>
    /// <param name="reference">The reference for the KL term (default: adapters disabled; unused when β = 0).</param>
    /// <param name="role">What the prompts are for, in messages.</param>
    public GrpoObjective(IReadOnlyList<PromptExample> prompts, IReadOnlyList<RewardSource> rewards, GrpoOptions options, TrainingOptions training,
        int padTokenId, IReadOnlyList<int> stopTokenIds, Func<IReadOnlyList<int>, string>? decode = null, ReferenceModel? reference = null, string role = "training")
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(training);
        options.Validate();
        if (prompts.Count == 0)
            throw new LoraException($"the {role} data has no prompts.");
        if (rewards.Count == 0)
            throw new LoraException("GRPO needs at least one reward (a C# reward function or a reward model).");
        var duplicate = rewards.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new LoraException($"two rewards are named '{duplicate.Key}'; names must differ (their metrics are rewards/{{name}}/mean).");
        (_prompts, _rewards, _options, _padTokenId, _stopTokenIds, _decode) = (prompts, rewards, options, padTokenId, stopTokenIds, decode);
        (_batchSize, _accumulation) = (training.BatchSize, training.GradientAccumulationSteps);
        _reference = reference ?? ReferenceModel.DisabledAdapters;
        var generationBatch = _batchSize * _accumulation;
        if (generationBatch % options.NumGenerations != 0)
            throw new LoraException($"the generation batch (batch size {_batchSize} × gradient accumulation {_accumulation} = {generationBatch} completions) must be a multiple of num_generations {options.NumGenerations}, as in TRL.");
        PromptsPerRollout = generationBatch / options.NumGenerations;
        Lengths = prompts.Select(p => p.PromptIds.Length).ToArray();
    }

    public IReadOnlyList<int> Lengths { get; }

    public int PromptsPerRollout { get; }

    public int StepsPerRollout => _options.NumIterations;

    public GrpoOptions Options => _options;

    private GenerationOptions Generation(long seed) => new()
    {
        MaxNewTokens = _options.MaxCompletionLength,
        DoSample = true,
        Temperature = _options.Temperature,
        TopK = _options.TopK,
        TopP = _options.TopP,
        RepetitionPenalty = _options.RepetitionPenalty,
        StopTokenIds = _stopTokenIds,
        Seed = seed,
    };

    /// <summary>One sampled completion with what the loss needs.</summary>
    private sealed record Sample(PromptExample Prompt, int[] Completion, bool InLoss, double Advantage)
    {
        public float[]? RefLogps { get; set; }

        public float[]? OldLogps { get; set; }
    }

    private sealed record Buffer(List<Sample> Samples, List<int[]> MicroBatches);

    public IReadOnlyDictionary<string, double> Rollout(CausalLM model, IReadOnlyList<int> prompts, Device device, long seed)
    {
        var (samples, metrics) = Generate(model, prompts.Select(i => _prompts[i]).ToList(), device, seed);
        if (_options.Beta != 0)
            Fill(samples, device, (s, v) => s.RefLogps = v, ids => _reference.Run(model, m => m.Forward(ids.Ids, ids.Mask)));
        if (_options.NumIterations > 1)
            Fill(samples, device, (s, v) => s.OldLogps = v, ids => model.Forward(ids.Ids, ids.Mask));

        // grpo_trainer.py _prepare_inputs: the generation batch is shuffled once, then split into the micro-batches
        // of its steps; each of the num_iterations steps reuses the same split.
        var order = new SplitMix64((ulong)seed).Permutation(samples.Count);
        var micro = order.Chunk(_batchSize).Select(c => c.ToArray()).ToList();
        _buffer = new Buffer(samples, micro);
        return metrics;
    }

    public IReadOnlyList<int[]> StepUnits(int stepInRollout) =>
        (_buffer ?? throw new InvalidOperationException("no rollout yet: the trainer calls Rollout first.")).MicroBatches;

    public IObjectiveBatch Collate(IReadOnlyList<int> indices)
    {
        var samples = indices.Select(i => (_buffer ?? throw new InvalidOperationException("no rollout yet.")).Samples[i]).ToList();
        return Build(samples);
    }

    public ObjectiveLoss Loss(CausalLM model, IObjectiveBatch batch, Device device)
    {
        var b = (GrpoBatch)batch;
        var (logps, logits) = b.Layout.Logps(CompletionBatch.ForwardOf(model), device, _options.Temperature);
        var mask = b.Layout.CompletionMask.CopyTo(device);
        var old = b.OldLogps?.CopyTo(device) ?? logps.detach();
        var (perToken, kl, ratio) = GrpoMath.PerTokenLoss(logps, old, b.RefLogps?.CopyTo(device), b.Advantages.CopyTo(device), _options);
        var loss = Reduce(perToken, mask);
        using var noGrad = no_grad();
        var advantages = b.Advantages.CopyTo(device);
        var (low, high, region) = GrpoMath.Clipped(ratio.detach(), advantages, _options);
        var metrics = new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["entropy"] = (TokenLogProbs.Entropy(logits.detach()) * mask).sum(),
            ["clip_ratio/low_mean"] = (low.to(ScalarType.Float32) * mask).sum(),
            ["clip_ratio/high_mean"] = (high.to(ScalarType.Float32) * mask).sum(),
            ["clip_ratio/region_mean"] = (region.to(ScalarType.Float32) * mask).sum(),
        };
        if (kl is not null)
            metrics["kl"] = (kl.detach() * mask).sum();
        var tokens = Math.Max(1, b.CompletionTokens);
        return new ObjectiveLoss(loss, metrics) { MetricCounts = metrics.Keys.ToDictionary(k => k, _ => (double)tokens, StringComparer.Ordinal) };
    }

    /// <summary>Samples <see cref="GrpoOptions.NumGenerations"/> completions per evaluation prompt (seeded with
    /// <see cref="GrpoOptions.EvalSeed"/>) and reports their rewards and the loss at ratio 1 (TRL's eval loss: the
    /// GRPO loss on freshly sampled completions).</summary>
    public IReadOnlyDictionary<string, double> Evaluate(CausalLM model, Device device, int batchSize)
    {
        var (samples, metrics) = Generate(model, _prompts, device, _options.EvalSeed);
        if (_options.Beta != 0)
            Fill(samples, device, (s, v) => s.RefLogps = v, ids => _reference.Run(model, m => m.Forward(ids.Ids, ids.Mask)));
        double sum = 0, normalizer = 0;
        foreach (var chunk in samples.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            using var batch = Build(chunk);
            var (logps, _) = batch.Layout.Logps(CompletionBatch.ForwardOf(model), device, _options.Temperature);
            var (perToken, _, _) = GrpoMath.PerTokenLoss(logps, logps, batch.RefLogps?.CopyTo(device), batch.Advantages.CopyTo(device), _options);
            sum += Reduce(perToken, batch.Layout.CompletionMask.CopyTo(device)).to(ScalarType.Float64).item<double>();
            normalizer += batch.Normalizer;
        }

        var result = new Dictionary<string, double>(StringComparer.Ordinal) { ["loss"] = normalizer == 0 ? 0 : sum / normalizer };
        foreach (var (name, value) in metrics)
            result[name] = value;
        return result;
    }

    /// <summary>The loss sum of a micro-batch for the loss type (divided by the step's normaliser in the trainer).</summary>
    private Tensor Reduce(Tensor perToken, Tensor mask) => GrpoMath.Reduce(perToken, mask, _options.LossType);

    /// <summary>Sampling and scoring: G completions per prompt, rewards, advantages, and the rollout metrics.</summary>
    private (List<Sample> Samples, Dictionary<string, double> Metrics) Generate(CausalLM model, IReadOnlyList<PromptExample> prompts, Device device, long seed)
    {
        var g = _options.NumGenerations;
        var expanded = prompts.SelectMany(p => Enumerable.Repeat(p, g)).ToList();  // RepeatSampler: groups of G
        var generated = Sampling.Sample(model, expanded.Select(p => p.PromptIds).ToList(), Generation(seed), _padTokenId, seed);
        var rewardSamples = expanded.Zip(generated, (p, s) => new RewardSample(p, s.Tokens, _decode?.Invoke(s.Tokens) ?? string.Empty)).ToList();
        var perFunction = new double[expanded.Count, _rewards.Count];
        for (var k = 0; k < _rewards.Count; k++)
        {
            var scores = _rewards[k].Score(rewardSamples);
            for (var i = 0; i < expanded.Count; i++)
                perFunction[i, k] = scores[i];
        }

        var advantages = GrpoMath.Advantages(perFunction, _rewards.Select(r => r.Weight).ToList(), g, _options.ScaleRewards);
        var samples = new List<Sample>(expanded.Count);
        for (var i = 0; i < expanded.Count; i++)
        {
            // mask_truncated_completions: a completion that did not stop on eos is left out of the loss.
            var inLoss = !_options.MaskTruncatedCompletions || generated[i].Reason == FinishReason.StopToken;
            samples.Add(new Sample(expanded[i], [.. generated[i].Tokens], inLoss, advantages.Advantages[i]));
        }

        var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["reward"] = advantages.Reward,
            ["reward_std"] = advantages.RewardStd,
            ["frac_reward_zero_std"] = advantages.FracRewardZeroStd,
            ["completions/mean_length"] = generated.Average(s => s.Tokens.Count),
            ["completions/clipped_ratio"] = generated.Count(s => s.Reason != FinishReason.StopToken) / (double)generated.Count,
        };
        for (var k = 0; k < _rewards.Count; k++)
        {
            metrics[$"rewards/{_rewards[k].Name}/mean"] = advantages.MeanPerFunction[k];
            metrics[$"rewards/{_rewards[k].Name}/std"] = advantages.StdPerFunction[k];
        }

        return (samples, metrics);
    }

    /// <summary>Per-token log-probs of every sample's completion under <paramref name="forward"/> (no grad), kept on
    /// the host.</summary>
    private void Fill(List<Sample> samples, Device device, Action<Sample, float[]> set, Func<(Tensor Ids, Tensor Mask), Tensor> forward)
    {
        using var noGrad = no_grad();
        foreach (var chunk in samples.Chunk(_batchSize))
        {
            using var scope = NewDisposeScope();
            using var layout = CompletionBatch.Build(chunk.Select(s => s.Prompt.PromptIds).ToList(), chunk.Select(s => (IReadOnlyList<int>)s.Completion).ToList(), _padTokenId);
            var (logps, _) = layout.Logps((ids, mask) => forward((ids, mask)), device, _options.Temperature);
            var values = logps.cpu().data<float>().ToArray();
            var width = layout.CompletionWidth;
            for (var i = 0; i < chunk.Length; i++)
                set(chunk[i], values.AsSpan(i * width, chunk[i].Completion.Length).ToArray());
        }
    }

    private GrpoBatch Build(IReadOnlyList<Sample> samples)
    {
        var layout = CompletionBatch.Build(samples.Select(s => s.Prompt.PromptIds).ToList(), samples.Select(s => (IReadOnlyList<int>)s.Completion).ToList(), _padTokenId);
        if (samples.Any(s => !s.InLoss))
        {
            using var keep = tensor(samples.Select(s => s.InLoss ? 1f : 0f).ToArray()).unsqueeze(1);
            layout.CompletionMask.mul_(keep);
        }

        var width = layout.CompletionWidth;
        Tensor? Rows(Func<Sample, float[]?> pick)
        {
            if (samples.Any(s => pick(s) is null))
                return null;
            var values = new float[samples.Count * width];
            for (var i = 0; i < samples.Count; i++)
                pick(samples[i])!.CopyTo(values, i * width);
            return tensor(values, [samples.Count, width]);
        }

        var tokens = samples.Where(s => s.InLoss).Sum(s => (long)s.Completion.Length);
        var normalizer = GrpoMath.Normalizer(_options.LossType, samples.Count, tokens, _options.MaxCompletionLength);
        return new GrpoBatch(layout, tensor(samples.Select(s => (float)s.Advantage).ToArray()), Rows(s => s.RefLogps), Rows(s => s.OldLogps), normalizer, tokens);
    }

    private sealed class GrpoBatch(CompletionBatch layout, Tensor advantages, Tensor? refLogps, Tensor? oldLogps, long normalizer, long completionTokens) : IObjectiveBatch
    {
        public CompletionBatch Layout { get; } = layout;

        public Tensor Advantages { get; } = advantages;

        public Tensor? RefLogps { get; } = refLogps;

        public Tensor? OldLogps { get; } = oldLogps;

        public long CompletionTokens { get; } = completionTokens;

        public long Normalizer { get; } = normalizer;

        public long InputTokens => Layout.RealTokens;

        public void Dispose()
        {
            Layout.Dispose();
            Advantages.Dispose();
            RefLogps?.Dispose();
            OldLogps?.Dispose();
        }
    }
}
