namespace Lora.Training.Objectives.Ppo;

/// <summary>TRL's <c>kl_estimator</c> (<c>http://joschu.net/blog/kl-approx.html</c>).</summary>
public enum KlEstimator
{
    /// <summary><c>k1</c> (default): log π − log π_ref.</summary>
    K1,

    /// <summary><c>k3</c>: (r − 1) − log r with r = π_ref / π (unbiased, lower variance).</summary>
    K3,
}

/// <summary>TRL's experimental <c>PPOConfig</c> fields the objective uses (<c>trl/experimental/ppo/ppo_config.py</c>;
/// defaults there).</summary>
public sealed record PpoOptions
{
    /// <summary><c>num_ppo_epochs</c> (4): passes over each rollout.</summary>
    public int NumPpoEpochs { get; init; } = 4;

    /// <summary><c>num_mini_batches</c> (1): optimizer steps per pass (it must divide the gradient accumulation
    /// steps: a mini-batch is whole micro-batches).</summary>
    public int NumMiniBatches { get; init; } = 1;

    /// <summary><c>kl_coef</c> (0.05): weight of the per-token KL penalty in the rewards.</summary>
    public double KlCoef { get; init; } = 0.05;

    /// <summary><c>kl_estimator</c> (k1).</summary>
    public KlEstimator KlEstimator { get; init; } = KlEstimator.K1;

    /// <summary><c>cliprange</c> (0.2): the policy ratio's clip.</summary>
    public double Cliprange { get; init; } = 0.2;

    /// <summary><c>vf_coef</c> (0.1): weight of the value loss.</summary>
    public double VfCoef { get; init; } = 0.1;

    /// <summary><c>cliprange_value</c> (0.2): how far a value prediction may move from the rollout's.</summary>
    public double CliprangeValue { get; init; } = 0.2;

    /// <summary><c>gamma</c> (1.0): discount.</summary>
    public double Gamma { get; init; } = 1.0;

    /// <summary><c>lam</c> (0.95): GAE's λ.</summary>
    public double Lam { get; init; } = 0.95;

    /// <summary><c>whiten_rewards</c> (false): whiten the per-token rewards before GAE (needs mini-batches of at
    /// least 8).</summary>
    public bool WhitenRewards { get; init; }

    /// <summary><c>response_length</c> (53): tokens generated per response.</summary>
    public int ResponseLength { get; init; } = 53;

    /// <summary><c>temperature</c> (0.7): sampling temperature, also applied to every scored logit.</summary>
    public double Temperature { get; init; } = 0.7;

    /// <summary><c>stop_token="eos"</c> (TRL's default is None: responses run to response_length): stop a response
    /// at eos and pad after it.</summary>
    public bool StopAtEos { get; init; }

    /// <summary><c>missing_eos_penalty</c> (None): subtracted from the score of a response without eos.</summary>
    public double? MissingEosPenalty { get; init; }

    /// <summary>Seed of evaluation sampling.</summary>
    public long EvalSeed { get; init; }

    public void Validate()
    {
        if (NumPpoEpochs < 1 || NumMiniBatches < 1)
            throw new LoraException($"num_ppo_epochs and num_mini_batches must be >= 1 (got {NumPpoEpochs}, {NumMiniBatches}).");
        if (!(KlCoef >= 0) || !(Cliprange >= 0) || !(CliprangeValue >= 0) || !(VfCoef >= 0))
            throw new LoraException($"kl_coef, cliprange, cliprange_value and vf_coef must be >= 0 (got {KlCoef}, {Cliprange}, {CliprangeValue}, {VfCoef}).");
        if (Gamma is < 0 or > 1 || Lam is < 0 or > 1)
            throw new LoraException($"gamma and lam must be in [0, 1] (got {Gamma}, {Lam}).");
        if (ResponseLength < 1)
            throw new LoraException($"response_length must be >= 1 (got {ResponseLength}).");
        if (!(Temperature > 0))
            throw new LoraException($"temperature must be > 0 (got {Temperature}).");
    }
}
