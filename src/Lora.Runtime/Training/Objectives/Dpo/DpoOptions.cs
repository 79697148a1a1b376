namespace Lora.Training.Objectives.Dpo;

/// <summary>TRL's <c>DPOConfig</c> fields the objective uses (<c>trl/trainer/dpo_config.py</c>; defaults there).</summary>
public sealed record DpoOptions
{
    /// <summary><c>beta</c> (0.1): the strength of the KL constraint to the reference (IPO's τ).</summary>
    public double Beta { get; init; } = 0.1;

    /// <summary><c>loss_type</c> (sigmoid).</summary>
    public DpoLossType LossType { get; init; } = DpoLossType.Sigmoid;

    /// <summary><c>label_smoothing</c> (0): the assumed share of flipped labels, for <see cref="DpoLossType.Robust"/>
    /// (in [0, 0.5)).</summary>
    public double LabelSmoothing { get; init; }

    /// <summary><c>max_length</c> (1024): each prompt + completion sequence is cut to this many tokens
    /// (<see cref="TruncationMode"/>); with keep_start, pairs whose prompt alone fills it are dropped. Null = no limit.</summary>
    public int? MaxLength { get; init; } = 1024;

    /// <summary><c>truncation_mode</c> (keep_start): keep the first or the last <see cref="MaxLength"/> tokens.</summary>
    public DpoTruncation TruncationMode { get; init; } = DpoTruncation.KeepStart;

    /// <summary><c>precompute_ref_log_probs</c> (false): compute the reference log-probs of every pair once, before
    /// the first step (then the reference model is not run during training).</summary>
    public bool PrecomputeRefLogProbs { get; init; }

    public void Validate()
    {
        if (!(Beta > 0) || !double.IsFinite(Beta))
            throw new LoraException($"beta must be > 0 (got {Beta}).");
        if (LabelSmoothing is < 0 or >= 0.5 || double.IsNaN(LabelSmoothing))
            throw new LoraException($"label smoothing must be in [0, 0.5) (got {LabelSmoothing}).");
        if (LabelSmoothing > 0 && LossType != DpoLossType.Robust)
            throw new LoraException($"label smoothing is used by the robust loss only (loss type is {DpoLoss.Name(LossType)}).");
        if (MaxLength is < 2)
            throw new LoraException($"max length must be >= 2 (got {MaxLength}).");
    }
}

/// <summary>TRL's <c>truncation_mode</c>.</summary>
public enum DpoTruncation
{
    /// <summary><c>keep_start</c>: the first max_length tokens.</summary>
    KeepStart,

    /// <summary><c>keep_end</c>: the last max_length tokens.</summary>
    KeepEnd,
}
