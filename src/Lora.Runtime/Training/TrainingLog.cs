using System.Text.Json;

namespace Lora.Training;

/// <summary>
/// The run's log: each row goes to <c>trainer_state.json</c>'s <c>log_history</c> (<see cref="TrainerState"/>),
/// is appended to <c>metrics.jsonl</c> in the output directory (unless <paramref name="metricsPath"/> is null), and is
/// raised as an event.
/// </summary>
internal sealed class TrainingLog(string? metricsPath)
{
    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    public string? MetricsPath { get; } = metricsPath;

    /// <summary>A new run: an empty metrics file.</summary>
    public void Start()
    {
        if (MetricsPath is not null)
            File.WriteAllText(MetricsPath, string.Empty);
    }

    /// <summary>A resumed run: the metrics file holds exactly the rows of the checkpoint's state.</summary>
    public void Restart(TrainerState state)
    {
        if (MetricsPath is not null)
            File.WriteAllLines(MetricsPath, state.Entries().Select(e => JsonSerializer.Serialize(e, Json)));
    }

    public void Write(TrainerState state, TrainingLogEntry entry, Action<TrainingLogEntry>? logged)
    {
        state.Add(entry);
        if (MetricsPath is not null)
            File.AppendAllText(MetricsPath, JsonSerializer.Serialize(entry, Json) + "\n");
        logged?.Invoke(entry);
    }
}
