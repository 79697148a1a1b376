using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Dpo;

/// <summary>
/// DPO's per-pair losses, transcribed from TRL (<c>trl/trainer/dpo_trainer.py</c>, <c>DPOTrainer._compute_loss</c>,
/// <c>f_divergence_type="reverse_kl"</c>, <c>ld_alpha=None</c>). With summed completion log-probs π and reference
/// log-probs π_ref:
/// <code>
///   Δ = (π_c − π_ref,c) − (π_r − π_ref,r)
///   sigmoid  ℓ = −log σ(βΔ)
///   hinge    ℓ = relu(1 − βΔ)
///   ipo      ℓ = ((π_c − π_ref,c)/n_c − (π_r − π_ref,r)/n_r − 1/(2β))²      n = completion tokens (≥ 1)
///   robust   ℓ = (−(1−ε)·log σ(βΔ) + ε·log σ(−βΔ)) / (1 − 2ε)
///   rewards: β(π_c − π_ref,c), β(π_r − π_ref,r)   (TRL's rewards/chosen, rewards/rejected)
/// </code>
/// TRL's loss is the batch mean of ℓ.
/// </summary>
public static class DpoLoss
{
    /// <summary>ℓ per pair <c>(B)</c>.</summary>
    public static Tensor PerPair(Tensor chosenLogps, Tensor rejectedLogps, Tensor refChosenLogps, Tensor refRejectedLogps,
        Tensor chosenTokens, Tensor rejectedTokens, DpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var scope = NewDisposeScope();
        var chosenRatio = chosenLogps - refChosenLogps;
        var rejectedRatio = rejectedLogps - refRejectedLogps;
        var delta = chosenRatio - rejectedRatio;
        var beta = options.Beta;
        var loss = options.LossType switch
        {
            DpoLossType.Sigmoid => -nn.functional.logsigmoid(beta * delta),
            DpoLossType.Hinge => nn.functional.relu(1 - beta * delta),
            DpoLossType.Ipo => (chosenRatio / chosenTokens.clamp_min(1) - rejectedRatio / rejectedTokens.clamp_min(1) - 1 / (2 * beta)).square(),
            _ => (-(1 - options.LabelSmoothing) * nn.functional.logsigmoid(beta * delta)
                  + options.LabelSmoothing * nn.functional.logsigmoid(-beta * delta)) / (1 - 2 * options.LabelSmoothing),
        };
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>TRL's name of a loss type.</summary>
    public static string Name(DpoLossType type) => type switch
    {
        DpoLossType.Sigmoid => "sigmoid",
        DpoLossType.Ipo => "ipo",
        DpoLossType.Hinge => "hinge",
        _ => "robust",
    };

    /// <summary>A loss type by TRL's name.</summary>
    public static DpoLossType Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "sigmoid" => DpoLossType.Sigmoid,
        "ipo" => DpoLossType.Ipo,
        "hinge" => DpoLossType.Hinge,
        "robust" => DpoLossType.Robust,
        _ => throw new LoraException($"DPO loss type '{name}' is not one of sigmoid, ipo, hinge, robust."),
    };
}
