namespace Lora.Training;

/// <summary>Where a run stands after an optimizer step (for progress displays).</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="TotalSteps">Optimizer steps the run will make.</param>
/// <param name="Loss">This step's loss (token-weighted mean over its accumulated micro-batches).</param>
/// <param name="LearningRate">The rate this step used.</param>
/// <param name="GradNorm">Gradient norm before clipping.</param>
/// <param name="TokensPerSecond">Input tokens per second over this run so far (resumed steps excluded).</param>
/// <param name="Epoch">Fractional epoch.</param>
/// <param name="Elapsed">Time since this process started training.</param>
/// <param name="Remaining">Estimated time to the last step.</param>
public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, double LearningRate, double GradNorm,
    double TokensPerSecond, double Epoch, TimeSpan Elapsed, TimeSpan Remaining);
