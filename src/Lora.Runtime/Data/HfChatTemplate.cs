using Lora.Chat;
using Lora.Chat.Jinja;

namespace Lora.Data;

/// <summary>
/// The model's own chat template (tokenizer_config.json <c>chat_template</c>, rendered by <see cref="ChatTemplate"/>
/// as transformers' <c>apply_chat_template</c> renders it) as a training template. Each assistant turn i is a target:
/// its text is what <c>render(messages[:i+1])</c> adds to <c>render(messages[:i], add_generation_prompt=True)</c> —
/// the reply and whatever the template closes it with (e.g. <c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>, eos), the
/// tokens the model must learn to emit; headers, system and user turns are prompt. That needs each rendering to
/// continue the one before it; a template that rewrites earlier turns once a later one exists (Qwen3 drops the
/// reasoning of earlier assistant turns) cannot be split this way and is refused for that record, naming the turn.
/// The text carries its own special tokens (bos), so it is encoded without adding them, as
/// <c>apply_chat_template(tokenize=True)</c> does.
/// </summary>
internal sealed class HfChatTemplate(ChatTemplate template) : PromptTemplate
{
    public override string Name => "model";

    public override bool AddSpecialTokens => false;

    public override IReadOnlyList<TemplateSegment> Render(DataRecord record, TemplateTokens tokens)
    {
        var messages = AsChat(record, Name).Select(m => (m.Role, m.Content)).ToList();
        var segments = new List<TemplateSegment>();
        var done = string.Empty; // the text the segments so far add up to
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i].Role != ChatMessage.Assistant)
                continue;
            var prompt = RenderChat(messages.Take(i), addGenerationPrompt: true, record);
            var full = RenderChat(messages.Take(i + 1), addGenerationPrompt: false, record);
            if (!prompt.StartsWith(done, StringComparison.Ordinal) || !full.StartsWith(prompt, StringComparison.Ordinal))
                throw new LoraException($"{Where(record)}the model's chat template ({template.Origin}) does not render assistant turn {CountAssistants(messages, i)} as a continuation of the conversation before it (it rewrites earlier text once a later turn exists), so the reply's tokens cannot be marked for training; use --template chatml/llama2 or a template string.");
            var target = full[prompt.Length..];
            if (!target.Contains(messages[i].Content.Trim(), StringComparison.Ordinal))
                throw new LoraException($"{Where(record)}the model's chat template ({template.Origin}) does not render assistant turn {CountAssistants(messages, i)} after its generation prompt (add_generation_prompt), so the reply's tokens cannot be marked for training; use --template chatml/llama2 or a template string.");
            segments.Add(new(prompt[done.Length..], false));
            segments.Add(new(target, true));
            done = full;
        }

        var whole = RenderChat(messages, addGenerationPrompt: false, record);
        if (!whole.StartsWith(done, StringComparison.Ordinal))
            throw new LoraException($"{Where(record)}the model's chat template ({template.Origin}) renders the whole conversation differently from its turns one by one, so the reply's tokens cannot be marked for training.");
        if (whole.Length > done.Length)
            segments.Add(new(whole[done.Length..], false));
        return segments;
    }

    private string RenderChat(IEnumerable<(string Role, string Content)> messages, bool addGenerationPrompt, DataRecord record)
    {
        try
        {
            return template.Render(messages, addGenerationPrompt);
        }
        catch (TemplateException e)
        {
            throw new LoraException($"{Where(record)}{e.Message}");
        }
    }

    private static int CountAssistants(List<(string Role, string Content)> messages, int upTo) =>
        messages.Take(upTo + 1).Count(m => m.Role == ChatMessage.Assistant);
}
