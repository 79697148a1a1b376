using System.Text.Json;
using System.Text.Json.Serialization;

namespace Lora.Training;

/// <summary>
/// <c>trainer_state.json</c>, as transformers' <c>TrainerState</c> writes it (global_step, epoch, max_steps,
/// log_history, best_metric, best_model_checkpoint, ...), plus the data position this toolkit resumes from
/// (<see cref="SamplerEpoch"/>, <see cref="SamplerBatch"/>: the next micro-batch to read).
/// </summary>
public sealed class TrainerState
{
    public const string FileName = "trainer_state.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    [JsonPropertyName("global_step")]
    public int GlobalStep { get; set; }

    [JsonPropertyName("epoch")]
    public double Epoch { get; set; }

    [JsonPropertyName("max_steps")]
    public int MaxSteps { get; set; }

    [JsonPropertyName("num_train_epochs")]
    public int NumTrainEpochs { get; set; }

    [JsonPropertyName("logging_steps")]
    public int LoggingSteps { get; set; }

    [JsonPropertyName("eval_steps")]
    public int EvalSteps { get; set; }

    [JsonPropertyName("save_steps")]
    public int SaveSteps { get; set; }

    [JsonPropertyName("train_batch_size")]
    public int TrainBatchSize { get; set; }

    [JsonPropertyName("best_metric")]
    public double? BestMetric { get; set; }

    [JsonPropertyName("best_global_step")]
    public int? BestGlobalStep { get; set; }

    [JsonPropertyName("best_model_checkpoint")]
    public string? BestModelCheckpoint { get; set; }

    [JsonPropertyName("sampler_epoch")]
    public int SamplerEpoch { get; set; }

    [JsonPropertyName("sampler_batch")]
    public int SamplerBatch { get; set; }

    [JsonPropertyName("seed")]
    public int Seed { get; set; }

    /// <summary>Ranks of a data-parallel run (absent for one process): a resume needs the same number.</summary>
    [JsonPropertyName("world_size")]
    public int? WorldSize { get; set; }

    [JsonPropertyName("log_history")]
    public List<JsonElement> LogHistory { get; set; } = [];

    /// <summary>The log rows with transformers' key names (<c>learning_rate</c> for lr).</summary>
    public void Add(TrainingLogEntry entry) => LogHistory.Add(JsonSerializer.SerializeToElement(ToHf(entry), Json));

    /// <summary>The log rows as entries.</summary>
    public IEnumerable<TrainingLogEntry> Entries() => LogHistory.Select(FromHf);

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TrainerState Read(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), Json)
                ?? throw new LoraException($"{path}: empty trainer state.");
        }
        catch (JsonException e)
        {
            throw new LoraException($"{path}: not a valid trainer state ({e.Message}).", e);
        }
    }

    private static readonly HashSet<string> FixedKeys = new(StringComparer.Ordinal)
    {
        "step", "epoch", "loss", "grad_norm", "learning_rate", "tokens_per_s", "eval_loss", "eval_perplexity",
    };

    private static Dictionary<string, object> ToHf(TrainingLogEntry e)
    {
        var row = new Dictionary<string, object> { ["step"] = e.Step, ["epoch"] = e.Epoch };
        if (e.Loss is { } loss)
            row["loss"] = loss;
        if (e.GradNorm is { } gn)
            row["grad_norm"] = gn;
        if (e.LearningRate is { } lr)
            row["learning_rate"] = lr;
        if (e.TokensPerSecond is { } tps)
            row["tokens_per_s"] = tps;
        if (e.EvalLoss is { } el)
            row["eval_loss"] = el;
        if (e.EvalPerplexity is { } ep)
            row["eval_perplexity"] = ep;
        foreach (var (name, value) in e.Metrics ?? [])
            row[name] = value;
        return row;
    }

    private static TrainingLogEntry FromHf(JsonElement row)
    {
        double? Get(string name) => row.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        var metrics = row.EnumerateObject()
            .Where(p => !FixedKeys.Contains(p.Name) && p.Value.ValueKind == JsonValueKind.Number)
            .ToDictionary(p => p.Name, p => (object)p.Value.GetDouble(), StringComparer.Ordinal);
        return new TrainingLogEntry
        {
            Step = (int)(Get("step") ?? 0),
            Epoch = Get("epoch") ?? 0,
            Loss = Get("loss"),
            GradNorm = Get("grad_norm"),
            LearningRate = Get("learning_rate"),
            TokensPerSecond = Get("tokens_per_s"),
            EvalLoss = Get("eval_loss"),
            EvalPerplexity = Get("eval_perplexity"),
            Metrics = metrics.Count > 0 ? metrics : null,
        };
    }
}
