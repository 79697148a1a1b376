namespace Lora.Data;

/// <summary>
/// ChatML: each message is <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c>. For assistant messages the
/// target is <c>{content}&lt;|im_end|&gt;</c> (the header and the trailing newline stay prompt), which is what TRL's
/// assistant-only loss covers.
/// </summary>
internal sealed class ChatMlTemplate : PromptTemplate
{
    public override string Name => "chatml";

    public override bool AddSpecialTokens => false;

    public override IReadOnlyList<TemplateSegment> Render(DataRecord record, TemplateTokens tokens)
    {
        var segments = new List<TemplateSegment>();
        var prompt = string.Empty;
        foreach (var message in AsChat(record, Name))
        {
            if (message.Role != ChatMessage.Assistant)
            {
                prompt += $"<|im_start|>{message.Role}\n{message.Content}<|im_end|>\n";
                continue;
            }

            segments.Add(new(prompt + "<|im_start|>assistant\n", false));
            segments.Add(new(message.Content + "<|im_end|>", true));
            prompt = "\n";
        }

        if (prompt.Length > 0)
            segments.Add(new(prompt, false));
        return segments;
    }
}
