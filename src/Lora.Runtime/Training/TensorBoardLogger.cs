using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;

namespace Lora.Training;

/// <summary>
/// Writes a run's log rows as TensorBoard scalars (TorchSharp's <c>SummaryWriter</c>; event files
/// <c>events.out.tfevents.*</c> that <c>tensorboard --logdir DIR</c> reads), named as transformers'
/// <c>TensorBoardCallback</c> names them: <c>train/loss</c>, <c>train/learning_rate</c>, <c>train/grad_norm</c>,
/// <c>train/tokens_per_s</c>, <c>eval/loss</c>, <c>eval/perplexity</c>, and an objective's other metrics under
/// <c>train/NAME</c> or <c>eval/NAME</c>. Attach it to a <see cref="Trainer"/> (<see cref="Attach"/>) or write
/// scalars of your own (<see cref="AddScalar"/>). The directory and the event file are created by the first
/// scalar, so attaching a logger to a trainer does not make its output directory non-empty before training starts.
/// </summary>
public sealed class TensorBoardLogger
{
    /// <summary>The subdirectory of a run's output directory that <c>lora train</c> and the sample write to.</summary>
    public const string DefaultDirectoryName = "runs";

    private SummaryWriter? _writer;

    public TensorBoardLogger(string logDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(logDirectory);
        LogDirectory = logDirectory;
    }

    public string LogDirectory { get; }

    /// <summary>Writes every row <paramref name="trainer"/> logs from now on.</summary>
    public void Attach(Trainer trainer)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        trainer.Logged += Write;
    }

    /// <summary>One log row as scalars at its step.</summary>
    public void Write(TrainingLogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var step = entry.Step;
        if (entry.IsEval)
        {
            AddScalar("eval/loss", entry.EvalLoss!.Value, step);
            if (entry.EvalPerplexity is { } ppl)
                AddScalar("eval/perplexity", ppl, step);
        }

        if (entry.Loss is { } loss)
            AddScalar("train/loss", loss, step);
        if (entry.LearningRate is { } lr)
            AddScalar("train/learning_rate", lr, step);
        if (entry.GradNorm is { } norm)
            AddScalar("train/grad_norm", norm, step);
        if (entry.TokensPerSecond is { } speed)
            AddScalar("train/tokens_per_s", speed, step);
        foreach (var (name, value) in entry.Metrics ?? [])
        {
            if (Number(value) is not { } number)
                continue;
            var tag = name.StartsWith("eval_", StringComparison.Ordinal) ? "eval/" + name["eval_".Length..] : (entry.IsEval ? "eval/" : "train/") + name;
            AddScalar(tag, number, step);
        }
    }

    /// <summary>A scalar of your own (for example a task metric before and after training).</summary>
    public void AddScalar(string tag, double value, int step)
    {
        if (_writer is null)
        {
            Directory.CreateDirectory(LogDirectory);
            _writer = torch.utils.tensorboard.SummaryWriter(LogDirectory);
        }

        _writer.add_scalar(tag, (float)value, step);
    }

    private static double? Number(object value) => value switch
    {
        double d => d,
        float f => f,
        int i => i,
        long l => l,
        JsonElement { ValueKind: JsonValueKind.Number } e => e.GetDouble(),
        _ => null,
    };
}
