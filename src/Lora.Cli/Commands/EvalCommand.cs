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
            Description = "Evaluation data: Alpaca JSON/JSONL, chat JSONL, plain text (.txt or {\"text\"} rows), or pre-tokenised JSONL rows {\"input_ids\": [...], \"labels\": [...]?}.",
            Required = true,
        };
        var template = new Option<string?>("--template") { Description = "Prompt template for instruction/chat data: alpaca (default for Alpaca records), llama2, chatml, model (the model's own chat template), or a template string." };
        var maxLength = new Option<int>("--max-length") { Description = "Truncate examples to this many tokens.", DefaultValueFactory = _ => 1024 };
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var command = new Command("eval", "Loss and perplexity of a model (and adapter) on a dataset.")
        {
            model, adapter, merge, data, template, maxLength, json, device, dtype,
        };
        var quantize = new QuantizeOptions();
        foreach (var option in quantize.All)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            if (!File.Exists(parse.GetValue(data)))
                throw new LoraException($"{parse.GetValue(data)}: file not found.");
            using var session = ModelSession.Open(parse.GetValue(model)!, parse.GetValue(adapter), parse.GetValue(merge),
                parse.GetValue(device)!, parse.GetValue(dtype)!, stderr, quantize.Read(parse, parse.GetValue(device)!));
            var path = parse.GetValue(data)!;
            IEnumerable<TokenizedExample> examples;
            if (CommandData.IsTokenized(path))
            {
                // Pre-tokenised rows stream as they are: no tokenizer, no template, no length limit.
                examples = TokenizedJsonlReader.Read(path);
            }
            else
            {
                var loaded = CommandData.Load(path, parse.GetValue(model)!, parse.GetValue(template), parse.GetValue(maxLength), new(() => Lora.Tokenization.HfTokenizer.Load(parse.GetValue(model)!)));
                if (loaded.Warning is { } warning)
                    stderr.WriteLine($"warning: {warning}");
                examples = loaded.Examples;
            }

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
