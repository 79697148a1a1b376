using System.Text.Json;

namespace Lora.Training;

/// <summary>
/// The run's log: each row goes to <c>trainer_state.json</c>'s <c>log_history</c> (<see cref="TrainerState"/>),
/// is appended to <c>metrics.jsonl</c> in the output directory (unless <paramref name="metricsPath"/> is null), and is
/// raised as an event.
/// </summary>
/// <remarks>With <paramref name="writes"/> false (the ranks other than 0 of a data-parallel run) rows only go to the
/// state: no file, no event.</remarks>
internal sealed class TrainingLog(string? metricsPath, bool writes = true)
{
    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    public string? MetricsPath { get; } = metricsPath;

    /// <summary>A new run: an empty metrics file.</summary>
    public void Start()
    {
        if (writes && MetricsPath is not null)
            File.WriteAllText(MetricsPath, string.Empty);
    }

    /// <summary>A resumed run: the metrics file holds exactly the rows of the checkpoint's state.</summary>
    public void Restart(TrainerState state)
    {
        if (writes && MetricsPath is not null)
            File.WriteAllLines(MetricsPath, state.Entries().Select(e => JsonSerializer.Serialize(e, Json)));
    }

    public void Write(TrainerState state, TrainingLogEntry entry, Action<TrainingLogEntry>? logged)
    {
        state.Add(entry);
        if (!writes)
            return;
        if (MetricsPath is not null)
            File.AppendAllText(MetricsPath, JsonSerializer.Serialize(entry, Json) + "\n");
        logged?.Invoke(entry);
    }
}
