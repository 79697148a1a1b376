namespace Lora.Training;

/// <summary>What a finished run produced.</summary>
/// <param name="GlobalStep">Optimizer steps done in total (including resumed ones).</param>
/// <param name="FinalLoss">Loss of the last step.</param>
/// <param name="EvalLoss">Last evaluation loss (null without eval data).</param>
/// <param name="OutputDirectory">Where the final adapter (or model) was written.</param>
/// <param name="Checkpoints">Checkpoint directories left on disk, oldest first.</param>
/// <param name="MetricsPath"><c>metrics.jsonl</c>; null when it was not written (<see cref="TrainingOptions.WriteMetricsFile"/>).</param>
/// <param name="LossCurvePath"><c>loss.svg</c>.</param>
/// <param name="LogHistory">Every log row of the run.</param>
public sealed record TrainingResult(int GlobalStep, double FinalLoss, double? EvalLoss, string OutputDirectory,
    IReadOnlyList<string> Checkpoints, string? MetricsPath, string LossCurvePath, IReadOnlyList<TrainingLogEntry> LogHistory);
