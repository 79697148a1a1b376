namespace Lora.Training.Objectives.Dpo;

/// <summary>TRL's DPO <c>loss_type</c> values implemented here (<c>trl/trainer/dpo_trainer.py</c>,
/// <c>_compute_loss</c>; the others TRL has are not).</summary>
public enum DpoLossType
{
    /// <summary><c>sigmoid</c> (default): −log σ(β·Δ), the DPO paper's loss.</summary>
    Sigmoid,

    /// <summary><c>ipo</c>: (Δ̄ − 1/(2β))², Δ̄ from log-ratios averaged over the completion tokens.</summary>
    Ipo,

    /// <summary><c>hinge</c>: relu(1 − β·Δ) (SLiC).</summary>
    Hinge,

    /// <summary><c>robust</c>: the noise-robust loss with <c>label_smoothing</c> ε:
    /// (−(1−ε)·log σ(βΔ) + ε·log σ(−βΔ)) / (1 − 2ε).</summary>
    Robust,
}
