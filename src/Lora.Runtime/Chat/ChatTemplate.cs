using System.Text.Json;
using Lora.Chat.Jinja;

namespace Lora.Chat;

/// <summary>
/// A Hugging Face chat template (the Jinja source in tokenizer_config.json's <c>chat_template</c>, or a
/// <c>chat_template.jinja</c> file) rendered as transformers' <c>apply_chat_template(messages, tokenize=False)</c>
/// renders it: Jinja2 with <c>trim_blocks</c> and <c>lstrip_blocks</c>, loop controls, transformers' <c>tojson</c>,
/// <c>raise_exception</c> and <c>strftime_now</c> (transformers <c>utils/chat_template_utils.py</c>,
/// <c>_cached_compile_jinja_template</c> and <c>render_jinja_template</c>), with the variables
/// <c>messages</c>, <c>tools</c>, <c>documents</c>, <c>add_generation_prompt</c>, the tokenizer's special tokens
/// (<c>bos_token</c>, <c>eos_token</c>, …; <c>tokenization_utils_base.apply_chat_template</c> passes
/// <c>special_tokens_map</c>) and any extra variables. The Jinja engine implements the subset real templates use
/// (see docs/serving.md); anything else is a <see cref="TemplateException"/> naming the line.
/// </summary>
public sealed record ChatTemplate
{
    private readonly IReadOnlyList<Stmt> _body;

    private ChatTemplate(string source, string origin, IReadOnlyList<Stmt> body, IReadOnlyDictionary<string, string> specialTokens)
    {
        Source = source;
        Origin = origin;
        _body = body;
        SpecialTokens = specialTokens;
    }

    /// <summary>The Jinja source.</summary>
    public string Source { get; }

    /// <summary>Where the template came from (used in error messages).</summary>
    public string Origin { get; }

    /// <summary>Variables every rendering gets: bos_token, eos_token, unk_token, pad_token, … (strings).</summary>
    public IReadOnlyDictionary<string, string> SpecialTokens { get; }

    /// <summary>The clock behind <c>strftime_now</c> (Llama 3.1 prints today's date); tests pin it.</summary>
    public Func<DateTime> Now { get; init; } = () => DateTime.Now;

    /// <summary>Parses a template. <paramref name="specialTokens"/> become variables (bos_token = "&lt;s&gt;", …).</summary>
    /// <exception cref="TemplateException">The template does not parse; the message names origin and line.</exception>
    public static ChatTemplate Parse(string source, string origin = "chat template", IReadOnlyDictionary<string, string>? specialTokens = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(source, origin, Parser.Parse(source, origin), specialTokens ?? new Dictionary<string, string>());
    }

    /// <summary>The chat template of a tokenizer directory: <c>chat_template.jinja</c> if present (transformers ≥ 4.43
    /// saves it there), else tokenizer_config.json's <c>chat_template</c> (a string, or a list of
    /// <c>{"name", "template"}</c> from which <paramref name="name"/>, default "default", is taken); null when none.</summary>
    /// <exception cref="LoraException">tokenizer_config.json is malformed, or the named template is missing.</exception>
    public static ChatTemplate? Load(string directory, string? name = null)
    {
        var configPath = Path.Combine(directory, "tokenizer_config.json");
        var specialTokens = new Dictionary<string, string>(StringComparer.Ordinal);
        string? source = null;
        var origin = configPath;
        if (File.Exists(configPath))
        {
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(File.ReadAllText(configPath), new JsonDocumentOptions { AllowTrailingCommas = true });
            }
            catch (JsonException e)
            {
                throw new LoraException($"{configPath}: not valid JSON (line {(e.LineNumber ?? 0) + 1}: {e.Message})");
            }

            using (document)
            {
                var root = document.RootElement;
                foreach (var field in SpecialTokenFields)
                {
                    if (root.TryGetProperty(field, out var token) && TokenContent(token) is { } content)
                    {
                        specialTokens[field] = content;
                    }
                }

                if (root.TryGetProperty("chat_template", out var template))
                {
                    source = template.ValueKind switch
                    {
                        JsonValueKind.String => template.GetString(),
                        JsonValueKind.Array => Named(template, name ?? "default", configPath),
                        JsonValueKind.Null => null,
                        _ => throw new LoraException($"{configPath}: field 'chat_template' must be a string or a list of {{\"name\", \"template\"}}"),
                    };
                    origin = $"{configPath} (chat_template)";
                }
            }
        }

        var jinja = Path.Combine(directory, "chat_template.jinja");
        if (File.Exists(jinja) && name is null)
        {
            source = File.ReadAllText(jinja);
            origin = jinja;
        }

        if (source is null && name is not null)
        {
            throw new LoraException($"{configPath}: no chat template named '{name}'");
        }

        return source is null ? null : Parse(source, origin, specialTokens);
    }

    /// <summary>A template from a Jinja file, with the special tokens of the tokenizer in
    /// <paramref name="tokenizerDirectory"/> (its tokenizer_config.json) as variables: for a model that ships no chat
    /// template, or to override the one it ships.</summary>
    /// <exception cref="LoraException">The file is missing, or tokenizer_config.json is malformed.</exception>
    /// <exception cref="TemplateException">The template does not parse.</exception>
    public static ChatTemplate LoadFile(string templatePath, string tokenizerDirectory)
    {
        if (!File.Exists(templatePath))
        {
            throw new LoraException($"{templatePath}: chat template file not found.");
        }

        return Parse(File.ReadAllText(templatePath), templatePath, SpecialTokensOf(tokenizerDirectory));
    }

    private static Dictionary<string, string> SpecialTokensOf(string directory)
    {
        var configPath = Path.Combine(directory, "tokenizer_config.json");
        var specialTokens = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!File.Exists(configPath))
        {
            return specialTokens;
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(configPath), new JsonDocumentOptions { AllowTrailingCommas = true });
            foreach (var field in SpecialTokenFields)
            {
                if (document.RootElement.TryGetProperty(field, out var token) && TokenContent(token) is { } content)
                {
                    specialTokens[field] = content;
                }
            }
        }
        catch (JsonException e)
        {
            throw new LoraException($"{configPath}: not valid JSON (line {(e.LineNumber ?? 0) + 1}: {e.Message})");
        }

        return specialTokens;
    }

    private static readonly string[] SpecialTokenFields = ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"];

    private static string Named(JsonElement list, string name, string path)
    {
        foreach (var item in list.EnumerateArray())
        {
            if (item.TryGetProperty("name", out var n) && n.GetString() == name && item.TryGetProperty("template", out var t))
            {
                return t.GetString() ?? "";
            }
        }

        throw new LoraException($"{path}: field 'chat_template' has no template named '{name}' (names: {string.Join(", ", list.EnumerateArray().Select(i => i.TryGetProperty("name", out var n) ? n.GetString() : "?"))})");
    }

    private static string? TokenContent(JsonElement token) => token.ValueKind switch
    {
        JsonValueKind.String => token.GetString(),
        JsonValueKind.Object when token.TryGetProperty("content", out var c) => c.GetString(),
        _ => null,
    };

    /// <summary>Renders role/content messages (apply_chat_template with tokenize=False).</summary>
    public string Render(IEnumerable<(string Role, string Content)> messages, bool addGenerationPrompt = false)
    {
        var list = messages.Select(m => (object?)new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content }).ToList();
        return RenderValues(list, null, null, addGenerationPrompt, null);
    }

    /// <summary>Renders messages given as JSON (an array of message objects with any fields: content lists,
    /// tool_calls, …), with optional tools/documents (JSON arrays) and extra variables (a JSON object, e.g.
    /// <c>{"enable_thinking": false}</c>).</summary>
    public string Render(JsonElement messages, bool addGenerationPrompt = false, JsonElement? tools = null, JsonElement? documents = null, JsonElement? variables = null)
    {
        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw new LoraException("messages must be a JSON array of {\"role\", \"content\"} objects");
        }

        Dictionary<string, object?>? extra = null;
        if (variables is { ValueKind: JsonValueKind.Object } v)
        {
            extra = (Dictionary<string, object?>)Py.FromJson(v)!;
        }

        return RenderValues(Py.FromJson(messages), tools is { ValueKind: not JsonValueKind.Null } t ? Py.FromJson(t) : null,
            documents is { ValueKind: not JsonValueKind.Null } d ? Py.FromJson(d) : null, addGenerationPrompt, extra);
    }

    private string RenderValues(object? messages, object? tools, object? documents, bool addGenerationPrompt, Dictionary<string, object?>? extra)
    {
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["raise_exception"] = new Callable("raise_exception", (args, _) => throw new RaisedException(args.Count > 0 ? Py.Str(args[0]) : "")),
            ["strftime_now"] = new Callable("strftime_now", (args, _) => Strftime.Format(Now(), args.Count > 0 ? Py.Str(args[0]) : "")),
            ["namespace"] = new Callable("namespace", (args, kwargs) =>
            {
                var ns = new Namespace();
                if (args.Count > 0 && args[0] is Dictionary<string, object?> init)
                {
                    foreach (var (k, val) in init)
                    {
                        ns.Attributes[k] = val;
                    }
                }

                foreach (var (k, val) in kwargs)
                {
                    ns.Attributes[k] = val;
                }

                return ns;
            }),
            ["range"] = new Callable("range", (args, _) =>
            {
                var (start, stop, step) = args.Count switch
                {
                    1 => (0L, Py.ToLong(args[0]), 1L),
                    2 => (Py.ToLong(args[0]), Py.ToLong(args[1]), 1L),
                    _ => (Py.ToLong(args[0]), Py.ToLong(args[1]), Py.ToLong(args[2])),
                };
                var list = new List<object?>();
                for (var i = start; step > 0 ? i < stop : i > stop; i += step)
                {
                    list.Add(i);
                }

                return list;
            }),
            ["dict"] = new Callable("dict", (_, kwargs) => kwargs.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal)),
        };
        foreach (var (k, token) in SpecialTokens)
        {
            globals[k] = token;
        }

        globals["messages"] = messages;
        globals["tools"] = tools;
        globals["documents"] = documents;
        globals["add_generation_prompt"] = addGenerationPrompt;
        if (extra is not null)
        {
            foreach (var (k, val) in extra)
            {
                globals[k] = val;
            }
        }

        return new Interpreter(Origin).Render(_body, globals);
    }
}
