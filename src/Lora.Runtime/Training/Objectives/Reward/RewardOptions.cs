namespace Lora.Training.Objectives.Reward;

/// <summary>TRL's <c>RewardConfig</c> fields the objective uses (<c>trl/trainer/reward_config.py</c>; defaults there).</summary>
public sealed record RewardOptions
{
    /// <summary><c>max_length</c> (1024): pairs whose chosen or rejected sequence is longer are dropped (TRL filters
    /// them out of the dataset; it does not truncate). Null keeps every pair.</summary>
    public int? MaxLength { get; init; } = 1024;

    /// <summary><c>center_rewards_coefficient</c> (None): weight of <c>mean((r_chosen + r_rejected)²)</c>, which
    /// pulls the rewards towards zero mean (Eisenstein et al. 2023).</summary>
    public double? CenterRewardsCoefficient { get; init; }

    public void Validate()
    {
        if (MaxLength is < 2)
            throw new LoraException($"max length must be >= 2 (got {MaxLength}).");
        if (CenterRewardsCoefficient is { } c && (!double.IsFinite(c) || c < 0))
            throw new LoraException($"center rewards coefficient must be a finite number >= 0 (got {c}).");
    }
}
