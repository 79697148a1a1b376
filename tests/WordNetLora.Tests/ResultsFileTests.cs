using System.Text.Json;
using Lora.Data;
using Lora.Evaluation;

namespace WordNetLora.Tests;

public class ResultsFileTests
{
    private static readonly string RepoRoot = typeof(ResultsFileTests).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false).Cast<System.Reflection.AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RepoRoot").Value!;

    [Fact]
    public void Results_json_has_the_metric_before_after_and_repository_relative_paths()
    {
        AlpacaRecord[] records = [new("What is the opposite of cheap?", "", "expensive"), new("What kind of thing is a cat?", "", "feline")];
        var before = new ExactMatchResult([new(records[0], "cheap cheap"), new(records[1], "")]);
        var after = new ExactMatchResult([new(records[0], "expensive"), new(records[1], " feline\n")]);
        var output = Path.Combine(Path.GetTempPath(), $"results-{Guid.NewGuid():N}");
        Directory.CreateDirectory(output);
        var model = Path.Combine(RepoRoot, "samples", "models", "wordnet-llama");
        var evalData = Path.Combine(RepoRoot, "samples", "data", "wordnet", "heldout.json");

        var path = ResultsFile.Write(output, before, after, evalData, model);

        var results = ResultsFile.Read(path);
        Assert.Equal(new ResultsFile.Results("exact_match", 0, 1, 2, "samples/data/wordnet/heldout.json", "samples/models/wordnet-llama", Path.GetFullPath(output)), results);
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal(["metric", "before", "after", "examples", "eval_data", "model", "adapter"], json.RootElement.EnumerateObject().Select(p => p.Name));

        var rows = File.ReadAllLines(Path.Combine(output, ResultsFile.AnswersFileName)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal("cheap cheap", rows[0].GetProperty("before").GetString());
        Assert.Equal(" feline\n", rows[1].GetProperty("after").GetString());
        Assert.Equal("feline", rows[1].GetProperty("expected").GetString());
    }
}
