namespace Lora.Training;

/// <summary>
/// transformers' schedules (<c>optimization.py</c>, each a <c>LambdaLR</c>): the rate used by optimizer step
/// <c>s + 1</c> is <c>lr · λ(s)</c>, where <c>s</c> = scheduler steps taken so far (0 for the first update),
/// <c>W</c> = warmup steps and <c>T</c> = total steps:
/// <code>
///   warmup (s &lt; W):        λ = s / max(1, W)                       (not for constant)
///   constant:              λ = 1                                   (warmup ignored)
///   constant_with_warmup:  λ = 1
///   linear:                λ = max(0, (T − s) / max(1, T − W))
///   cosine:                p = (s − W) / max(1, T − W);  λ = max(0, ½ · (1 + cos(π · 2 · 0.5 · p)))
/// </code>
/// Warmup given as a ratio is <c>W = ceil(T · ratio)</c>.
/// </summary>
public sealed class LearningRateSchedule
{
    public LearningRateSchedule(SchedulerType type, double baseLearningRate, int warmupSteps, int totalSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(totalSteps);
        Type = type;
        BaseLearningRate = baseLearningRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    public SchedulerType Type { get; }

    public double BaseLearningRate { get; }

    public int WarmupSteps { get; }

    public int TotalSteps { get; }

    /// <summary>W from a warmup ratio: <c>ceil(T · ratio)</c>.</summary>
    public static int WarmupFromRatio(double ratio, int totalSteps)
    {
        if (ratio is < 0 or >= 1 || double.IsNaN(ratio))
            throw new LoraException($"warmup ratio must be in [0, 1) (got {ratio}).");
        return (int)Math.Ceiling(totalSteps * ratio);
    }

    /// <summary>λ(s): the multiplier of the base rate after <paramref name="step"/> scheduler steps.</summary>
    public double Factor(int step)
    {
        var (w, t) = (WarmupSteps, TotalSteps);
        if (Type == SchedulerType.Constant)
            return 1.0;
        if (step < w)
            return (double)step / Math.Max(1, w);
        return Type switch
        {
            SchedulerType.ConstantWithWarmup => 1.0,
            SchedulerType.Linear => Math.Max(0.0, (double)(t - step) / Math.Max(1, t - w)),
            SchedulerType.Cosine => Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * 2.0 * 0.5 * ((double)(step - w) / Math.Max(1, t - w))))),
            _ => throw new ArgumentOutOfRangeException(nameof(step)),
        };
    }

    /// <summary>The rate of the update made after <paramref name="step"/> scheduler steps: <c>lr · λ(step)</c>.</summary>
    public double LearningRateAt(int step) => BaseLearningRate * Factor(step);

    /// <summary>Parses transformers' names: constant, constant_with_warmup, linear, cosine.</summary>
    public static SchedulerType ParseType(string name) => name.Trim().ToLowerInvariant().Replace('-', '_') switch
    {
        "constant" => SchedulerType.Constant,
        "constant_with_warmup" => SchedulerType.ConstantWithWarmup,
        "linear" => SchedulerType.Linear,
        "cosine" => SchedulerType.Cosine,
        _ => throw new LoraException($"scheduler '{name}' is not one of constant, constant_with_warmup, linear, cosine."),
    };

    /// <summary>transformers' spelling of <paramref name="type"/>.</summary>
    public static string Name(SchedulerType type) => type switch
    {
        SchedulerType.Constant => "constant",
        SchedulerType.ConstantWithWarmup => "constant_with_warmup",
        SchedulerType.Linear => "linear",
        _ => "cosine",
    };
}
