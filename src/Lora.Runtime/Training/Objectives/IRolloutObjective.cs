using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives;

/// <summary>
/// An objective that makes its own training data by sampling from the policy being trained: TRL's online trainers,
/// GRPO and PPO. The <see cref="Trainer"/> runs it in the same loop as every objective (schedule, accumulation,
/// clipping, checkpoints, resume, logging), with a generation phase in front:
/// <code>
///   rollout r = ⌊step / StepsPerRollout⌋ starts when step % StepsPerRollout = 0:
///     prompts  = the r-th group of PromptsPerRollout prompts of the seeded per-epoch order (the trainer's sampler,
///                over <see cref="ITrainingObjective.Lengths"/> = the prompts; an incomplete last group is dropped)
///     metrics  = Rollout(model in eval mode, under no_grad, prompts, seed(run seed, r))
///                (sample completions, score them, compute advantages; keep them as this rollout's units)
///   optimizer step k = step % StepsPerRollout of the rollout:
///     micro-batches = Collate(u) for u in StepUnits(k)          (units = indices into the rollout)
///     then the usual accumulation, normalisation, clipping and AdamW step; the rollout's metrics are logged
///     with each of its steps, beside the loss's metric sums
/// </code>
/// The sampling seed depends only on (seed, r), so a run resumed at a rollout boundary repeats the uninterrupted
/// one exactly; resumed inside a rollout, the rollout is made again with the resumed weights (as TRL regenerates its
/// buffered generation batch when resuming).
/// </summary>
public interface IRolloutObjective : ITrainingObjective
{
    /// <summary>Prompts one rollout samples from (GRPO: <c>generation_batch_size / num_generations</c>; PPO:
    /// <c>batch_size</c>).</summary>
    int PromptsPerRollout { get; }

    /// <summary>Optimizer steps that train on one rollout (GRPO: <c>num_iterations</c>; PPO:
    /// <c>num_ppo_epochs × num_mini_batches</c>).</summary>
    int StepsPerRollout { get; }

    /// <summary>The generation phase for prompts <paramref name="prompts"/> (indices into
    /// <see cref="ITrainingObjective.Lengths"/>): sample with <paramref name="model"/>, score, compute advantages and
    /// whatever the loss needs (old and reference log-probs, values), and keep it as the current rollout. Returns the
    /// rollout's metrics under TRL's names. Called in eval mode under no_grad.</summary>
    IReadOnlyDictionary<string, double> Rollout(CausalLM model, IReadOnlyList<int> prompts, Device device, long seed);

    /// <summary>The units (indices into the current rollout) of each micro-batch of optimizer step
    /// <paramref name="stepInRollout"/> of the rollout; <see cref="ITrainingObjective.Collate"/> builds them.</summary>
    IReadOnlyList<int[]> StepUnits(int stepInRollout);
}

/// <summary>
/// An objective with trainable parameters of its own, outside what <see cref="TrainableSelection"/> picks (PPO's
/// value head). They must belong to the model (a registered child module), so the optimizer, clipping and device
/// moves see them; the trainer marks them trainable and saves them beside the adapter in every checkpoint and at
/// the end, and restores them on resume.
/// </summary>
public interface IObjectiveParameters
{
    /// <summary>The objective's parameters, named.</summary>
    IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> Parameters { get; }

    /// <summary>Writes them into <paramref name="directory"/> (a checkpoint or the output directory).</summary>
    void Save(string directory);

    /// <summary>Reads them back from <paramref name="directory"/> (resume).</summary>
    void Load(string directory);
}
