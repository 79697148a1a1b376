using System.CommandLine;
using System.Text.Json;
using Lora.Generation;
using Lora.Tokenization;

namespace Lora.Cli.Commands;

/// <summary><c>lora generate</c>: continues a prompt with a model (optionally with an adapter), streaming the text as
/// it is produced.</summary>
internal static class GenerateCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var adapter = CommonOptions.Adapter();
        var merge = CommonOptions.Merge();
        var prompt = new Option<string>("--prompt") { Description = "The prompt text (special tokens such as BOS are added as the tokenizer does).", Required = true };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens to generate at most.", DefaultValueFactory = _ => 128 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature; 0 = greedy (the default).", DefaultValueFactory = _ => 0 };
        var topK = new Option<int>("--top-k") { Description = "Sample from the k most likely tokens (0 = off)." };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling threshold (1 = off).", DefaultValueFactory = _ => 1.0 };
        var repetition = new Option<double>("--repetition-penalty") { Description = "Penalty on tokens already present (1 = off).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long?>("--seed") { Description = "Seed for sampling." };
        var stop = new Option<string[]>("--stop") { Description = "Stop when the text contains this string (repeatable).", AllowMultipleArgumentsPerToken = false };
        var json = CommonOptions.Json();
        var chat = new Option<bool>("--chat") { Description = "Send --prompt as a user message through the model's chat template (tokenizer_config.json chat_template, add_generation_prompt), as apply_chat_template does." };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var command = new Command("generate", "Generate a continuation of a prompt.")
        {
            model, adapter, merge, prompt, maxNew, temperature, topK, topP, repetition, seed, stop, json, chat, device, dtype,
        };
        var quantize = new QuantizeOptions();
        foreach (var option in quantize.All)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            var modelDir = parse.GetValue(model)!;
            var tokenizer = HfTokenizer.Load(modelDir);
            using var session = ModelSession.Open(modelDir, parse.GetValue(adapter), parse.GetValue(merge), parse.GetValue(device)!, parse.GetValue(dtype)!, stderr, quantize.Read(parse, parse.GetValue(device)!));
            var temp = parse.GetValue(temperature);
            var stopIds = session.Model.Config.EosTokenIds.ToList();
            if (tokenizer.EosTokenId is { } eos && !stopIds.Contains(eos))
                stopIds.Add(eos);
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                DoSample = temp > 0,
                Temperature = temp > 0 ? temp : 1.0,
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                RepetitionPenalty = parse.GetValue(repetition),
                Seed = parse.GetValue(seed),
                StopTokenIds = stopIds,
            };
            var stops = parse.GetValue(stop) ?? [];
            var promptIds = parse.GetValue(chat)
                ? ChatPrompt.Encode(modelDir, tokenizer, [("user", parse.GetValue(prompt)!)])
                : tokenizer.Encode(parse.GetValue(prompt)!);
            var streaming = !parse.GetValue(json);
            var printed = 0;

            var result = TokenGenerator.Generate(session.Model, [promptIds], options, tokenizer.PadTokenId ?? 0,
                stop: (_, generated) =>
                {
                    var text = Text(tokenizer, generated, stopIds);
                    var hit = stops.Any(s => text.Contains(s, StringComparison.Ordinal));
                    if (streaming)
                    {
                        var visible = Trim(text, stops);
                        // Hold back a possibly incomplete UTF-8 sequence (decoded as U+FFFD) until the next token.
                        if (!hit && visible.EndsWith('\uFFFD'))
                            return false;
                        if (visible.Length > printed)
                        {
                            stdout.Write(visible[printed..]);
                            stdout.Flush();
                            printed = visible.Length;
                        }
                    }

                    return hit;
                })[0];

            var completion = Trim(Text(tokenizer, result.Tokens, stopIds), stops);
            if (streaming)
            {
                if (completion.Length > printed)
                    stdout.Write(completion[printed..]);
                stdout.WriteLine();
                return 0;
            }

            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                text = completion,
                tokens = result.Tokens,
                prompt_tokens = promptIds,
                finish_reason = result.Reason switch { FinishReason.StopToken => "stop_token", FinishReason.StopCondition => "stop_string", _ => "length" },
            }));
            return 0;
        });
        return command;
    }

    private static string Text(HfTokenizer tokenizer, IReadOnlyList<int> ids, List<int> stopIds) =>
        tokenizer.Decode(ids.Where(i => !stopIds.Contains(i)), skipSpecialTokens: true);

    private static string Trim(string text, string[] stops)
    {
        foreach (var s in stops)
        {
            var at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0)
                text = text[..at];
        }

        return text;
    }
}
