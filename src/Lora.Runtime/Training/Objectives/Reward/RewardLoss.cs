using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Reward;

/// <summary>
/// The reward model's pairwise loss (<c>trl/trainer/reward_trainer.py</c>, <c>RewardTrainer.compute_loss</c>), per
/// pair so that accumulated micro-batches average exactly:
/// <code>
///   ℓᵢ = −log σ(r_chosen,ᵢ − r_rejected,ᵢ − marginᵢ)  +  c · (r_chosen,ᵢ + r_rejected,ᵢ)²
/// </code>
/// (margin 0 when the data has none; c = <c>center_rewards_coefficient</c>, term left out when null). TRL's loss is
/// the mean of ℓ over the batch: <c>mean(−logsigmoid(…)) + c · mean((r_c + r_r)²)</c>.
/// </summary>
public static class RewardLoss
{
    /// <summary>ℓ per pair <c>(B)</c>, from rewards <c>(B)</c>.</summary>
    public static Tensor PerPair(Tensor chosen, Tensor rejected, Tensor? margin = null, double? centerRewardsCoefficient = null)
    {
        using var scope = NewDisposeScope();
        var diff = chosen - rejected;
        if (margin is not null)
            diff = diff - margin;
        var loss = -nn.functional.logsigmoid(diff);
        if (centerRewardsCoefficient is { } c)
            loss = loss + c * (chosen + rejected).square();
        return loss.MoveToOuterDisposeScope();
    }
}
