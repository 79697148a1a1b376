namespace Lora.Data;

/// <summary>
/// Renders a record into prompt and target text. Built in: <see cref="Alpaca"/> (Stanford's exact text),
/// <see cref="Llama2Chat"/> (<c>[INST] … [/INST]</c>) and <see cref="ChatMl"/> (<c>&lt;|im_start|&gt;role\n…&lt;|im_end|&gt;\n</c>);
/// plus user strings with <c>{instruction}</c>, <c>{input}</c>, <c>{output}</c> placeholders (<see cref="FromString"/>).
/// </summary>
public abstract class PromptTemplate
{
    /// <summary>Stanford Alpaca's <c>PROMPT_DICT</c>; target = output + eos.</summary>
    public static PromptTemplate Alpaca { get; } = new AlpacaTemplate();

    /// <summary>Meta's Llama-2 chat format with an optional <c>&lt;&lt;SYS&gt;&gt;</c> block.</summary>
    public static PromptTemplate Llama2Chat { get; } = new Llama2ChatTemplate();

    /// <summary>ChatML as used by Qwen and others.</summary>
    public static PromptTemplate ChatMl { get; } = new ChatMlTemplate();

    /// <summary>The name used in options and messages (<c>alpaca</c>, <c>llama2</c>, <c>chatml</c>, <c>custom</c>).</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Whether the text is encoded with the tokenizer's own special tokens (BOS). Chat templates write bos/eos into
    /// the text themselves and are encoded without them, as <c>apply_chat_template</c> does.
    /// </summary>
    public virtual bool AddSpecialTokens => true;

    /// <summary>The segments of <paramref name="record"/>, in order; their concatenation is the full text.</summary>
    /// <exception cref="LoraException">The template cannot render this kind of record, or the chat is malformed.</exception>
    public abstract IReadOnlyList<TemplateSegment> Render(DataRecord record, TemplateTokens tokens);

    /// <summary>
    /// The text a model continues to answer <paramref name="record"/>: everything the template renders before its last
    /// target segment — for Alpaca the prompt up to <c>### Response:</c>, for chat templates up to the assistant
    /// header. The record's own output (or last assistant turn) is not part of it, so pass an empty one. Encode it
    /// with <see cref="AddSpecialTokens"/>, as training does; the ids are then the prefix the trained model saw.
    /// </summary>
    /// <exception cref="LoraException">The template renders no target for this record.</exception>
    public string GenerationPrompt(DataRecord record, TemplateTokens tokens)
    {
        var segments = Render(record, tokens);
        var last = -1;
        for (var i = 0; i < segments.Count; i++)
        {
            if (segments[i].IsTarget)
                last = i;
        }

        if (last < 0)
            throw new LoraException($"{Where(record)}the {Name} template renders no response to generate for this record.");
        return string.Concat(segments.Take(last).Select(s => s.Text));
    }

    /// <summary>A user template; see <see cref="CustomTemplate"/> for the placeholder rules.</summary>
    public static PromptTemplate FromString(string template, string? noInputTemplate = null) => new CustomTemplate(template, noInputTemplate);

    /// <summary>A chat template (<see cref="Chat.ChatTemplate"/>, e.g. the model's own) for training and generation:
    /// each assistant turn is a target (see <see cref="HfChatTemplate"/>).</summary>
    public static PromptTemplate FromChatTemplate(Chat.ChatTemplate template) => new HfChatTemplate(template ?? throw new ArgumentNullException(nameof(template)));

    /// <summary>As <see cref="Parse(string)"/>, plus <c>model</c>: the chat template of the tokenizer in
    /// <paramref name="modelDirectory"/> (tokenizer_config.json <c>chat_template</c> or chat_template.jinja).</summary>
    /// <exception cref="LoraException">Unknown name, or the model has no chat template.</exception>
    public static PromptTemplate Parse(string nameOrTemplate, string modelDirectory) =>
        nameOrTemplate.Trim().Equals("model", StringComparison.OrdinalIgnoreCase)
            ? FromChatTemplate(Chat.ChatTemplate.Load(modelDirectory)
                ?? throw new LoraException($"{Path.Combine(modelDirectory, "tokenizer_config.json")}: --template model needs a 'chat_template' (or chat_template.jinja) in the model directory."))
            : Parse(nameOrTemplate);

    /// <summary>A built-in template by name, or a user template string (anything containing a <c>{</c>).</summary>
    public static PromptTemplate Parse(string nameOrTemplate) => nameOrTemplate.Trim().ToLowerInvariant() switch
    {
        "alpaca" => Alpaca,
        "llama2" or "llama-2" or "llama2-chat" => Llama2Chat,
        "chatml" => ChatMl,
        "model" => throw new LoraException("the \"model\" template is the model's own chat template: load it with PromptTemplate.Parse(name, modelDirectory) or FromChatTemplate."),
        _ when nameOrTemplate.Contains('{', StringComparison.Ordinal) => FromString(nameOrTemplate),
        _ => throw new LoraException($"unknown prompt template \"{nameOrTemplate}\" (known: alpaca, llama2, chatml, model (the model's own chat template), or a string with {{instruction}}, {{input}}, {{output}})."),
    };

    /// <summary>An Alpaca record as a two-turn chat, so chat templates can train on Alpaca data.</summary>
    protected static IReadOnlyList<ChatMessage> AsChat(DataRecord record, string template) => record switch
    {
        ChatRecord chat => chat.Messages,
        AlpacaRecord a => [
            new ChatMessage(ChatMessage.User, a.Input.Length == 0 ? a.Instruction : a.Instruction + "\n\n" + a.Input),
            new ChatMessage(ChatMessage.Assistant, a.Output)],
        _ => throw new LoraException($"{Where(record)}the {template} template renders chat or alpaca records, not {record.GetType().Name}."),
    };

    /// <summary><c>"file:line: "</c> for messages, or empty for records built in code.</summary>
    protected static string Where(DataRecord record) => record.Location.Length == 0 ? string.Empty : record.Location + ": ";
}
