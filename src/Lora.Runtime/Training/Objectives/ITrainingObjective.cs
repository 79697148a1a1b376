using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives;

/// <summary>
/// What a run optimizes: its examples, how a micro-batch is built from them, the batch's loss, and evaluation. The
/// <see cref="Trainer"/>'s loop — accumulation, clipping, schedule, divergence stop, events, checkpoints, exact
/// resume — is the same for every objective, as transformers' <c>Trainer.training_step</c> stays while TRL's trainers
/// override <c>compute_loss</c>. Causal-LM fine-tuning is <see cref="CausalLMObjective"/>; the preference objectives
/// (reward model, DPO) implement this interface as it is, the online ones (GRPO, PPO) its extension
/// <see cref="IRolloutObjective"/>, which adds a generation phase.
/// <para>
/// Normalisation: for one optimizer step over micro-batches m = 1..A the loop computes N = Σ_m
/// <see cref="IObjectiveBatch.Normalizer"/> first, then backpropagates Σ_m <see cref="ObjectiveLoss.Sum"/>ₘ / N, so
/// the gradient is that of the mean over the whole accumulated batch (tokens for SFT, C15; pairs for DPO).
/// </para>
/// </summary>
public interface ITrainingObjective
{
    /// <summary>The units the sampler draws from (examples, packed rows, pairs), by their length (for
    /// <c>group_by_length</c>).</summary>
    IReadOnlyList<int> Lengths { get; }

    /// <summary>Builds the micro-batch of units <paramref name="indices"/> (host tensors).</summary>
    IObjectiveBatch Collate(IReadOnlyList<int> indices);

    /// <summary>The micro-batch's summed loss (a differentiable scalar) and metric sums, computed by
    /// <paramref name="model"/> on <paramref name="device"/>.</summary>
    ObjectiveLoss Loss(CausalLM model, IObjectiveBatch batch, Device device);

    /// <summary>Metrics over this objective's examples, with <c>loss</c> first (the model is in eval mode, under
    /// no_grad). The trainer logs them as <c>eval_{name}</c>.</summary>
    IReadOnlyDictionary<string, double> Evaluate(CausalLM model, Device device, int batchSize);
}

/// <summary>One collated micro-batch of an objective; it owns its tensors.</summary>
public interface IObjectiveBatch : IDisposable
{
    /// <summary>What the loss sum is divided by, summed over the accumulated micro-batches of a step (label tokens
    /// for causal LM).</summary>
    long Normalizer { get; }

    /// <summary>Non-padding input tokens, for throughput.</summary>
    long InputTokens { get; }
}

/// <summary>A micro-batch's loss: the sum over its units (before normalisation) and named metric sums, each also
/// divided by the step's normaliser when logged (e.g. DPO's <c>rewards/margins</c>).</summary>
public sealed record ObjectiveLoss(Tensor Sum, IReadOnlyDictionary<string, Tensor>? MetricSums = null)
{
    /// <summary>Optional per-metric counts: a metric listed here is logged as its sum over the step's micro-batches
    /// divided by the sum of its counts, instead of by the normaliser (GRPO's token means — <c>kl</c>,
    /// <c>entropy</c>, <c>clip_ratio/*</c> — when its loss is normalised per sequence).</summary>
    public IReadOnlyDictionary<string, double>? MetricCounts { get; init; }
}
