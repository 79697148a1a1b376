using Lora.SafeTensors;
using TorchSharp;

namespace Lora.Cli.Tests;

/// <summary>Fixture paths and small helpers for running <c>lora</c> commands in-process.</summary>
internal static class CliFixtures
{
    public static string PeftFixture(string @case, string part = "") => Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", @case, part);

    public static string TempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "lora-cli-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        var code = LoraCli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>The fixture's input_ids as a JSONL file of {"input_ids": [...]} rows.</summary>
    public static string InputIdsJsonl(string @case)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(PeftFixture(@case), "expected.safetensors"));
        using var ids = file.Load("input_ids");
        var rows = Enumerable.Range(0, (int)ids.shape[0])
            .Select(r => "{\"input_ids\": [" + string.Join(",", ids[r].data<long>().ToArray()) + "]}");
        var path = Path.Combine(TempDirectory(), "ids.jsonl");
        File.WriteAllLines(path, rows);
        return path;
    }

    /// <summary>HF's causal-LM loss computed from reference logits (labels = input_ids): the number eval must print.</summary>
    public static double ReferenceLoss(string @case, string logitsKey)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(PeftFixture(@case), "expected.safetensors"));
        using var scope = torch.NewDisposeScope();
        var ids = file.Load("input_ids");
        var logits = file.Load(logitsKey);
        var vocab = logits.shape[^1];
        var loss = torch.nn.functional.cross_entropy(logits[.., ..^1, ..].reshape(-1, vocab), ids[.., 1..].reshape(-1));
        return loss.item<float>();
    }

    /// <summary>A model directory: a fixture checkpoint plus the tiny byte-level tokenizer (its ids fit the model).</summary>
    public static string ModelWithTokenizer(string @case)
    {
        var dir = TempDirectory();
        foreach (var f in Directory.GetFiles(PeftFixture(@case, "base")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        foreach (var f in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenizers", "bytes")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }
}
