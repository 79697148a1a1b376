using System.Text.Json.Serialization;

namespace Lora.Training;

/// <summary>
/// One row of the run's log (<c>metrics.jsonl</c>, <c>trainer_state.json</c>'s <c>log_history</c>): a training row
/// (<see cref="Loss"/> = mean of the logged steps' losses, each the token-weighted mean before its update;
/// <see cref="LearningRate"/> and <see cref="GradNorm"/> of the last step) or an evaluation row
/// (<see cref="EvalLoss"/>, <see cref="EvalPerplexity"/> = exp(eval_loss), token-weighted over the eval set), plus
/// whatever other metrics the objective reports (<see cref="Metrics"/>).
/// </summary>
public sealed record TrainingLogEntry
{
    [JsonPropertyName("step")]
    public int Step { get; init; }

    /// <summary>Fractional epoch: steps done / steps per epoch.</summary>
    [JsonPropertyName("epoch")]
    public double Epoch { get; init; }

    [JsonPropertyName("loss")]
    public double? Loss { get; init; }

    /// <summary>The rate the logged step was taken with.</summary>
    [JsonPropertyName("lr")]
    public double? LearningRate { get; init; }

    /// <summary>Global L2 norm of the gradients before clipping.</summary>
    [JsonPropertyName("grad_norm")]
    public double? GradNorm { get; init; }

    /// <summary>Input (non-padding) tokens per second since the previous log row.</summary>
    [JsonPropertyName("tokens_per_s")]
    public double? TokensPerSecond { get; init; }

    [JsonPropertyName("eval_loss")]
    public double? EvalLoss { get; init; }

    [JsonPropertyName("eval_perplexity")]
    public double? EvalPerplexity { get; init; }

    /// <summary>The objective's other metrics (<c>rewards/margins</c>, <c>eval_rewards/accuracies</c>, ...), written
    /// beside the fixed fields; null when there are none.</summary>
    [JsonExtensionData]
    public Dictionary<string, object>? Metrics { get; init; }

    [JsonIgnore]
    public bool IsEval => EvalLoss is not null;
}
