using Lora.Tokenization;

namespace Lora.Data.Preference;

/// <summary>
/// A prompt-only file read and tokenised for generation, as TRL's GRPO trainer tokenises prompts
/// (<c>trl/trainer/grpo_trainer.py</c>, <c>_tokenize_prompts</c>): text as is with the tokenizer's special tokens;
/// a conversation through the chat template with the assistant header appended (<c>add_generation_prompt=True</c>);
/// pre-tokenised ids as given.
/// </summary>
public sealed record PromptDataset(IReadOnlyList<PromptExample> Prompts)
{
    /// <param name="path">JSON array or JSON lines of prompt records.</param>
    /// <param name="tokenizer">The model's tokenizer; null is enough for pre-tokenised prompts.</param>
    /// <param name="template">Chat template for conversational prompts (null: ChatML).</param>
    public static PromptDataset Load(string path, HfTokenizer? tokenizer, PromptTemplate? template = null) =>
        new(PromptReader.Read(path).Select(r => Tokenize(r, tokenizer, template)).ToList());

    /// <summary>One prompt record as the model's input.</summary>
    public static PromptExample Tokenize(PromptRecord record, HfTokenizer? tokenizer, PromptTemplate? template = null)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.Prompt.Kind == PreferenceKind.Tokens)
            return new PromptExample(record.Prompt.Ids!, record) { PromptText = tokenizer?.Decode(record.Prompt.Ids!, skipSpecialTokens: true) ?? string.Empty };
        if (tokenizer is null)
            throw new LoraException($"{record.Location}: a {PreferenceReader.Name(record.Prompt.Kind)} prompt needs the model's tokenizer (only pre-tokenised prompts need none).");
        if (record.Prompt.Kind == PreferenceKind.Text)
            return new PromptExample(tokenizer.Encode(record.Prompt.Text!, addSpecialTokens: true), record) { PromptText = record.Prompt.Text! };

        var chat = template ?? PromptTemplate.ChatMl;
        var messages = record.Prompt.Messages!;
        // Render with an empty assistant turn and keep what precedes its content: the generation prompt.
        var segments = chat.Render(new ChatRecord([.. messages, new ChatMessage(ChatMessage.Assistant, string.Empty)]) { Location = record.Location }, TemplateTokens.From(tokenizer));
        var targets = messages.Count(m => m.Role == ChatMessage.Assistant);
        var text = string.Empty;
        var seen = 0;
        foreach (var segment in segments)
        {
            if (segment.IsTarget && seen++ == targets)
                break;
            text += segment.Text;
        }

        return new PromptExample(tokenizer.Encode(text, chat.AddSpecialTokens), record) { PromptText = text };
    }
}
