namespace Lora.Training.Objectives.Grpo;

/// <summary>TRL's GRPO <c>loss_type</c> values implemented here (<c>grpo_trainer.py</c>, <c>_compute_loss</c>).</summary>
public enum GrpoLossType
{
    /// <summary><c>dapo</c> (TRL's default): Σ token losses / completion tokens of the whole generation batch.</summary>
    Dapo,

    /// <summary><c>grpo</c>: each sequence's token mean, averaged over sequences.</summary>
    Grpo,

    /// <summary><c>dr_grpo</c>: Σ token losses / (sequences × max_completion_length).</summary>
    DrGrpo,
}

/// <summary>TRL's <c>scale_rewards</c>: what the group-centred rewards are divided by.</summary>
public enum GrpoScaleRewards
{
    /// <summary><c>group</c> (default): the std of the prompt's group.</summary>
    Group,

    /// <summary><c>batch</c>: the std of the whole generation batch.</summary>
    Batch,

    /// <summary><c>none</c>: not scaled (Dr. GRPO).</summary>
    None,
}

/// <summary>TRL's <c>GRPOConfig</c> fields the objective uses (<c>trl/trainer/grpo_config.py</c>; defaults there).</summary>
public sealed record GrpoOptions
{
    /// <summary><c>num_generations</c> (8): completions sampled per prompt (the group, G).</summary>
    public int NumGenerations { get; init; } = 8;

    /// <summary><c>max_completion_length</c> (256, <c>GRPOConfig.max_completion_length</c>): tokens generated at most
    /// per completion.</summary>
    public int MaxCompletionLength { get; init; } = 256;

    /// <summary><c>temperature</c> (1.0): sampling temperature, also applied to the logits the log-probs are taken
    /// from.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary><c>top_p</c> (1.0).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary><c>top_k</c> (0 = off).</summary>
    public int TopK { get; init; }

    /// <summary><c>repetition_penalty</c> (1.0).</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary><c>beta</c> (0.0): weight of the per-token KL to the reference; 0 skips the reference entirely.</summary>
    public double Beta { get; init; }

    /// <summary><c>epsilon</c> (0.2): lower clipping bound of the ratio (1 − ε).</summary>
    public double Epsilon { get; init; } = 0.2;

    /// <summary><c>epsilon_high</c> (None = epsilon): upper clipping bound (1 + ε_high; DAPO's clip-higher).</summary>
    public double? EpsilonHigh { get; init; }

    /// <summary><c>num_iterations</c> (1): optimizer steps per generation batch (μ); above 1 the sampling policy's
    /// log-probs are kept for the importance ratio.</summary>
    public int NumIterations { get; init; } = 1;

    /// <summary><c>loss_type</c> (dapo).</summary>
    public GrpoLossType LossType { get; init; } = GrpoLossType.Dapo;

    /// <summary><c>scale_rewards</c> (group).</summary>
    public GrpoScaleRewards ScaleRewards { get; init; } = GrpoScaleRewards.Group;

    /// <summary><c>mask_truncated_completions</c> (false): completions that did not stop on eos are left out of the
    /// loss.</summary>
    public bool MaskTruncatedCompletions { get; init; }

    /// <summary>Seed of evaluation sampling (fixed, so evaluations compare across steps).</summary>
    public long EvalSeed { get; init; }

    public void Validate()
    {
        if (NumGenerations < 2)
            throw new LoraException($"num_generations must be >= 2: the group's rewards are normalised by their std (got {NumGenerations}).");
        if (MaxCompletionLength < 1)
            throw new LoraException($"max_completion_length must be >= 1 (got {MaxCompletionLength}).");
        if (!(Temperature > 0))
            throw new LoraException($"temperature must be > 0 (got {Temperature}).");
        if (!(Beta >= 0) || !double.IsFinite(Beta))
            throw new LoraException($"beta must be >= 0 (got {Beta}).");
        if (!(Epsilon >= 0) || EpsilonHigh is < 0)
            throw new LoraException($"epsilon must be >= 0 (got {Epsilon}, epsilon_high {EpsilonHigh}).");
        if (NumIterations < 1)
            throw new LoraException($"num_iterations must be >= 1 (got {NumIterations}).");
    }
}
