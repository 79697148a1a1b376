using System.CommandLine;
using System.Text.Json;
using Lora.Data;
using Lora.Generation;
using Lora.Tokenization;

namespace Lora.Cli.Commands;

/// <summary><c>lora generate</c>: continues a prompt with a model (optionally with an adapter), streaming the text as
/// it is produced. The prompt is raw text (<c>--prompt</c>) or an instruction rendered by a template
/// (<c>--instruction</c>, <c>--input</c>, <c>--template</c>), as training rendered it.</summary>
internal static class GenerateCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var adapter = CommonOptions.Adapter();
        var merge = CommonOptions.Merge();
        var prompt = new Option<string?>("--prompt") { Description = "Raw prompt text, continued as it is (special tokens such as BOS are added as the tokenizer does)." };
        var template = new Option<string?>("--template") { Description = "With --instruction: the prompt template the model was tuned with: alpaca (the default), llama2, chatml, model (the model's own chat template), or a template string." };
        var instruction = new Option<string?>("--instruction") { Description = "An instruction, rendered by --template into the prompt the model was tuned on (instead of --prompt)." };
        var input = new Option<string?>("--input") { Description = "With --instruction: the record's input (context), as in Alpaca data." };
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
            model, adapter, merge, prompt, template, instruction, input, chat, maxNew, temperature, topK, topP, repetition, seed, stop, json, device, dtype,
        };
        var quantize = new QuantizeOptions();
        foreach (var option in quantize.All)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            var modelDir = parse.GetValue(model)!;
            var rawPrompt = parse.GetValue(prompt);
            var instructionText = parse.GetValue(instruction);
            if ((rawPrompt is null) == (instructionText is null))
                throw new LoraException("give --prompt TEXT (raw text) or --instruction TEXT (rendered by --template), not both or neither.");
            if (instructionText is null && (parse.GetValue(template) is not null || parse.GetValue(input) is not null))
                throw new LoraException("--template and --input render an --instruction; with --prompt the text is used as it is.");
            if (parse.GetValue(chat) && instructionText is not null)
                throw new LoraException("--chat sends --prompt through the model's own chat template; --instruction is rendered by --template instead. Use one of them.");
            var promptTemplate = PromptTemplate.Parse(parse.GetValue(template) ?? "alpaca", modelDir);
            using var session = ModelSession.Open(modelDir, parse.GetValue(adapter), parse.GetValue(merge), parse.GetValue(device)!, parse.GetValue(dtype)!, stderr, quantize.Read(parse, parse.GetValue(device)!));
            var tokenizer = HfTokenizer.Load(modelDir);
            var temp = parse.GetValue(temperature);
            var stopIds = TextGenerator.StopTokenIds(session.Model, tokenizer);
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
            // An instruction is rendered as training rendered it, and encoded the same way (ExactMatchEvaluator does too);
            // --chat renders --prompt as a user message with the model's chat template (apply_chat_template).
            var promptIds = instructionText is not null
                ? tokenizer.Encode(promptTemplate.GenerationPrompt(new AlpacaRecord(instructionText, parse.GetValue(input) ?? string.Empty, string.Empty), TemplateTokens.From(tokenizer)), promptTemplate.AddSpecialTokens)
                : parse.GetValue(chat)
                    ? ChatPrompt.Encode(modelDir, tokenizer, [("user", rawPrompt!)])
                    : tokenizer.Encode(rawPrompt!);
            var streaming = !parse.GetValue(json);
            var printed = 0;

            var result = TokenGenerator.Generate(session.Model, [promptIds], options, tokenizer.PadTokenId ?? 0,
                stop: (_, generated) =>
                {
                    var text = TextGenerator.Decode(tokenizer, generated, stopIds);
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

            var completion = Trim(TextGenerator.Decode(tokenizer, result.Tokens, stopIds), stops);
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
