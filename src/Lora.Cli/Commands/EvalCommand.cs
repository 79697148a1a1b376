using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Lora.Data;
using Lora.Evaluation;

namespace Lora.Cli.Commands;

/// <summary><c>lora eval</c>: the causal-LM loss of a model (optionally with an adapter) on a dataset — the same
/// number as transformers' <c>model(input_ids, labels=...).loss</c> over all rows as one batch.</summary>
internal static class EvalCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var adapter = CommonOptions.Adapter();
        var merge = CommonOptions.Merge();
        var data = new Option<string>("--data")
        {
            Description = "Evaluation data: JSONL rows {\"input_ids\": [...], \"labels\": [...]?} (labels default to the ids; -100 = ignored).",
            Required = true,
        };
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var command = new Command("eval", "Loss and perplexity of a model (and adapter) on a dataset.")
        {
            model, adapter, merge, data, json, device, dtype,
        };
        command.SetAction(parse =>
        {
            using var session = ModelSession.Open(parse.GetValue(model)!, parse.GetValue(adapter), parse.GetValue(merge),
                parse.GetValue(device)!, parse.GetValue(dtype)!, stderr);
            var examples = EvalData.Read(parse.GetValue(data)!);
            var result = Evaluator.Evaluate(session.Model, examples);
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new { loss = result.Loss, perplexity = result.Perplexity, tokens = result.Tokens }));
            }
            else
            {
                var inv = CultureInfo.InvariantCulture;
                stdout.WriteLine($"loss {result.Loss.ToString("F6", inv)}  perplexity {result.Perplexity.ToString("F4", inv)}  over {result.Tokens.ToString("N0", inv)} predicted tokens");
            }

            return 0;
        });
        return command;
    }
}

/// <summary>The formats <c>lora eval</c> reads.</summary>
internal static class EvalData
{
    public static IEnumerable<TokenizedExample> Read(string path)
    {
        if (!File.Exists(path))
            throw new LoraException($"{path}: file not found.");
        if (!path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
            throw new LoraException($"{path}: expected a .jsonl file of {{\"input_ids\": [...]}} rows.");
        return TokenizedJsonlReader.Read(path);
    }
}
