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
        var exactMatch = new Option<bool>("--exact-match") { Description = "Alpaca data: also answer each instruction greedily (as lora generate) and print the share of answers equal to the output." };
        var maxNewTokens = new Option<int>("--max-new-tokens") { Description = "With --exact-match: tokens per answer at most.", DefaultValueFactory = _ => 16 };
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var command = new Command("eval", "Loss and perplexity of a model (and adapter) on a dataset.")
        {
            model, adapter, merge, data, template, maxLength, exactMatch, maxNewTokens, json, device, dtype,
        };
        var quantize = new QuantizeOptions();
        foreach (var option in quantize.All)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            if (!File.Exists(parse.GetValue(data)))
                throw new LoraException($"{parse.GetValue(data)}: file not found.");
            if (parse.GetValue(exactMatch) && CommandData.IsTokenized(parse.GetValue(data)!))
                throw new LoraException($"{parse.GetValue(data)}: --exact-match needs Alpaca records {{instruction, input, output}}, not token ids.");
            var records = parse.GetValue(exactMatch) ? Lora.Evaluation.ExactMatchEvaluator.ReadRecords(parse.GetValue(data)!) : null; // before the model loads
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
            var matched = records is null ? null : Lora.Evaluation.ExactMatchEvaluator.Evaluate(session.Model, Lora.Tokenization.HfTokenizer.Load(parse.GetValue(model)!), records,
                parse.GetValue(template) is { } t ? Lora.Data.PromptTemplate.Parse(t) : null, parse.GetValue(maxNewTokens));
            if (parse.GetValue(json))
            {
                stdout.WriteLine(matched is null
                    ? JsonSerializer.Serialize(new { loss = result.Loss, perplexity = result.Perplexity, tokens = result.Tokens })
                    : JsonSerializer.Serialize(new { loss = result.Loss, perplexity = result.Perplexity, tokens = result.Tokens, exact_match = matched.Score, exact_match_correct = matched.Correct, exact_match_total = matched.Examples.Count }));
            }
            else
            {
                var inv = CultureInfo.InvariantCulture;
                stdout.WriteLine($"loss {result.Loss.ToString("F6", inv)}  perplexity {result.Perplexity.ToString("F4", inv)}  over {result.Tokens.ToString("N0", inv)} predicted tokens");
                if (matched is not null)
                    stdout.WriteLine($"exact match {matched.Score.ToString("F3", inv)} ({matched.Correct}/{matched.Examples.Count}) with greedy answers of at most {parse.GetValue(maxNewTokens)} tokens");
            }

            return 0;
        });
        return command;
    }
}
