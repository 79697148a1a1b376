using System.CommandLine;
using System.Text.Json;
using Lora.Chat;

namespace Lora.Cli.Commands;

/// <summary><c>lora template</c>: renders a conversation with the tokenizer's chat template, as transformers'
/// <c>apply_chat_template(messages, tokenize=False, add_generation_prompt=…)</c> does.</summary>
internal static class TemplateCommand
{
    public static Command Create(TextWriter stdout)
    {
        var tokenizer = new Option<string>("--tokenizer")
        {
            Description = "Model or tokenizer directory (tokenizer_config.json with chat_template, or chat_template.jinja).",
            Required = true,
        };
        var messages = new Option<string>("--messages")
        {
            Description = "JSON file: an array of {\"role\", \"content\"} messages, or {\"messages\": […], \"tools\": […], \"documents\": […], …other template variables}.",
            Required = true,
        };
        var generationPrompt = new Option<bool>("--add-generation-prompt") { Description = "End with the assistant header (add_generation_prompt=True)." };
        var name = new Option<string?>("--template-name") { Description = "Which template when tokenizer_config.json lists several (default: \"default\")." };
        var json = CommonOptions.Json();
        var command = new Command("template", "Render messages with the model's chat template (Jinja), as transformers does.")
        {
            tokenizer,
            messages,
            generationPrompt,
            name,
            json,
        };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(tokenizer)!;
            if (!Directory.Exists(dir))
            {
                throw new LoraException($"tokenizer directory '{dir}' does not exist");
            }

            var template = ChatTemplate.Load(dir, parse.GetValue(name))
                ?? throw new LoraException($"{Path.Combine(dir, "tokenizer_config.json")}: no 'chat_template' (and no chat_template.jinja in '{dir}')");
            var text = Render(template, parse.GetValue(messages)!, parse.GetValue(generationPrompt));
            stdout.Write(parse.GetValue(json) ? JsonSerializer.Serialize(new { text }, RelaxedJson) + "\n" : text + (text.EndsWith('\n') ? "" : "\n"));
            return 0;
        });
        return command;
    }

    private static readonly JsonSerializerOptions RelaxedJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Renders a messages file (an array, or an object with messages/tools/documents/variables).</summary>
    public static string Render(ChatTemplate template, string path, bool addGenerationPrompt)
    {
        if (!File.Exists(path))
        {
            throw new LoraException($"messages file '{path}' does not exist");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new LoraException($"{path}: not valid JSON (line {(e.LineNumber ?? 0) + 1}: {e.Message})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Array)
            {
                return template.Render(root, addGenerationPrompt);
            }

            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array)
            {
                throw new LoraException($"{path}: expected an array of messages or an object with a 'messages' array");
            }

            var variables = new Dictionary<string, JsonElement>();
            foreach (var p in root.EnumerateObject())
            {
                if (p.Name is not ("messages" or "tools" or "documents" or "add_generation_prompt"))
                {
                    variables[p.Name] = p.Value;
                }
            }

            var agp = addGenerationPrompt || (root.TryGetProperty("add_generation_prompt", out var a) && a.ValueKind == JsonValueKind.True);
            return template.Render(list, agp,
                root.TryGetProperty("tools", out var tools) ? tools : null,
                root.TryGetProperty("documents", out var docs) ? docs : null,
                JsonSerializer.SerializeToElement(variables));
        }
    }
}
