namespace Lora.Data;

/// <summary>
/// The Llama-2 chat format, as Meta's <c>chat_template</c> in Llama-2-*-chat-hf renders it:
/// <c>&lt;s&gt;[INST] &lt;&lt;SYS&gt;&gt;\n{system}\n&lt;&lt;/SYS&gt;&gt;\n\n{user} [/INST] {assistant} &lt;/s&gt;&lt;s&gt;[INST] {user} [/INST] …</c>.
/// Contents are stripped. An optional system message comes first, then user/assistant turns alternate starting with
/// user. Each assistant part <c>" {assistant} &lt;/s&gt;"</c> is a target.
/// </summary>
internal sealed class Llama2ChatTemplate : PromptTemplate
{
    public override string Name => "llama2";

    public override bool AddSpecialTokens => false;

    public override IReadOnlyList<TemplateSegment> Render(DataRecord record, TemplateTokens tokens)
    {
        var messages = AsChat(record, Name);
        var eos = tokens.RequireEos(Name);
        var bos = tokens.Bos ?? string.Empty;
        string? system = null;
        var start = 0;
        if (messages[0].Role == ChatMessage.System)
        {
            system = messages[0].Content;
            start = 1;
        }

        var segments = new List<TemplateSegment>();
        for (var i = start; i < messages.Count; i++)
        {
            var message = messages[i];
            var expected = (i - start) % 2 == 0 ? ChatMessage.User : ChatMessage.Assistant;
            if (message.Role != expected)
            {
                throw new LoraException(
                    $"{Where(record)}the llama2 template needs an optional system message, then user/assistant turns alternating from user; \"messages\"[{i}] is \"{message.Role}\".");
            }

            if (expected == ChatMessage.User)
            {
                var content = i == start && system is not null ? $"<<SYS>>\n{system}\n<</SYS>>\n\n{message.Content}" : message.Content;
                segments.Add(new($"{bos}[INST] {content.Trim()} [/INST]", false));
            }
            else
            {
                segments.Add(new($" {message.Content.Trim()} {eos}", true));
            }
        }

        return segments;
    }
}
