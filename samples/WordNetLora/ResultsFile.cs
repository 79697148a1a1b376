using System.Text.Encodings.Web;
using System.Text.Json;
using Lora;
using Lora.Evaluation;

namespace WordNetLora;

/// <summary>
/// The run's summary files in the output directory: <c>results.json</c>,
/// <c>{"metric": "exact_match", "before": x, "after": y, "examples": N, "eval_data": …, "model": …, "adapter": …}</c>
/// (paths relative to the repository root when inside it, else absolute), and <c>answers.jsonl</c>, one row per
/// held-out example: <c>{"instruction", "input", "expected", "before", "after"}</c>.
/// </summary>
public static class ResultsFile
{
    public const string FileName = "results.json";

    public const string AnswersFileName = "answers.jsonl";

    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes both files; returns the path of results.json.</summary>
    public static string Write(string outputDirectory, ExactMatchResult before, ExactMatchResult after, string evalData, string model)
    {
        if (before.Examples.Count != after.Examples.Count)
            throw new ArgumentException("before and after must score the same examples.", nameof(after));
        var results = new Results("exact_match", before.Score, after.Score, after.Examples.Count,
            SamplePaths.ForResults(evalData), SamplePaths.ForResults(model), SamplePaths.ForResults(outputDirectory));
        var path = Path.Combine(outputDirectory, FileName);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(results, new JsonSerializerOptions(Json) { WriteIndented = true }) + "\n");
        var rows = before.Examples.Zip(after.Examples, (b, a) => JsonSerializer.Serialize(new
        {
            instruction = a.Record.Instruction,
            input = a.Record.Input,
            expected = a.Record.Output,
            before = b.Generated,
            after = a.Generated,
        }, Json));
        AtomicFile.WriteAllText(Path.Combine(outputDirectory, AnswersFileName), string.Join("\n", rows) + "\n");
        return path;
    }

    /// <summary>Reads results.json back.</summary>
    public static Results Read(string path) =>
        JsonSerializer.Deserialize<Results>(File.ReadAllText(path)) ?? throw new LoraException($"{path}: empty results file.");

    /// <summary>The fields of results.json.</summary>
    public sealed record Results(
        [property: System.Text.Json.Serialization.JsonPropertyName("metric")] string Metric,
        [property: System.Text.Json.Serialization.JsonPropertyName("before")] double Before,
        [property: System.Text.Json.Serialization.JsonPropertyName("after")] double After,
        [property: System.Text.Json.Serialization.JsonPropertyName("examples")] int Examples,
        [property: System.Text.Json.Serialization.JsonPropertyName("eval_data")] string EvalData,
        [property: System.Text.Json.Serialization.JsonPropertyName("model")] string Model,
        [property: System.Text.Json.Serialization.JsonPropertyName("adapter")] string Adapter);
}
