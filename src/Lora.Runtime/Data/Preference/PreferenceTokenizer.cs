using Lora.Tokenization;

namespace Lora.Data.Preference;

/// <summary>
/// Turns <see cref="PreferenceRecord"/>s into <see cref="PreferenceExample"/>s as TRL's DPO trainer prepares its
/// dataset (<c>trl/trainer/dpo_trainer.py</c>, <c>DPOTrainer._prepare_dataset</c>):
/// <list type="number">
/// <item>no prompt: the shared prefix of chosen and rejected is the prompt (<c>trl/data_utils.py</c>,
/// <c>extract_prompt</c>: characters for text, whole messages for conversations);</item>
/// <item>text: the eos token is appended to chosen and rejected unless they end with it (conversations get it from
/// the template);</item>
/// <item>text is tokenised as is, with the tokenizer's special tokens (BOS); a conversation is rendered by a chat
/// template (ChatML unless given; the prompt ends with the assistant header, as <c>add_generation_prompt=True</c>)
/// and encoded without them, as <c>apply_chat_template</c> does;</item>
/// <item><c>prompt_ids = tok(prompt)</c>, <c>chosen_ids = tok(prompt + chosen)[len(prompt_ids):]</c> (likewise
/// rejected): a token merged across the boundary is counted in <see cref="PreferenceStats.PromptBoundaryMismatches"/>
/// (TRL warns), the split still follows the prompt's length.</item>
/// </list>
/// Pre-tokenised records are used as given (no tokenizer needed). The reward model reads the same pairs as
/// <c>prompt + completion</c>, which is the whole tokenised text of TRL's reward trainer except at such a boundary.
/// </summary>
public sealed class PreferenceTokenizer
{
    private readonly HfTokenizer? _tokenizer;
    private readonly PromptTemplate _template;
    private readonly TemplateTokens? _tokens;

    /// <param name="tokenizer">Needed for text and conversation records; null for pre-tokenised data.</param>
    /// <param name="template">The chat template for conversations (null: ChatML).</param>
    public PreferenceTokenizer(HfTokenizer? tokenizer, PromptTemplate? template = null)
    {
        _tokenizer = tokenizer;
        _template = template ?? PromptTemplate.ChatMl;
        _tokens = tokenizer is null ? null : TemplateTokens.From(tokenizer);
    }

    public PreferenceStats Stats { get; } = new();

    public PreferenceExample Tokenize(PreferenceRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        Stats.Records++;
        var example = record.Kind switch
        {
            PreferenceKind.Tokens => new PreferenceExample(record.Prompt?.Ids ?? [], record.Chosen.Ids!, record.Rejected.Ids!, record.Margin, record.Location),
            PreferenceKind.Text => Text(record),
            _ => Conversation(record),
        };
        Stats.Pairs++;
        return example;
    }

    private HfTokenizer Tokenizer(PreferenceRecord record) => _tokenizer
        ?? throw new LoraException($"{record.Location}: a {PreferenceReader.Name(record.Kind)} record needs the model's tokenizer (only pre-tokenised records need none).");

    private PreferenceExample Text(PreferenceRecord record)
    {
        var tokenizer = Tokenizer(record);
        var (prompt, chosen, rejected) = record.Prompt is { } p
            ? (p.Text!, record.Chosen.Text!, record.Rejected.Text!)
            : ImplicitPrompt.Split(record.Chosen.Text!, record.Rejected.Text!);
        if (_tokens?.Eos is { } eos)
        {
            if (!chosen.EndsWith(eos, StringComparison.Ordinal))
                chosen += eos;
            if (!rejected.EndsWith(eos, StringComparison.Ordinal))
                rejected += eos;
        }

        var promptIds = tokenizer.Encode(prompt, addSpecialTokens: true);
        return Split(record, promptIds, tokenizer.Encode(prompt + chosen, addSpecialTokens: true), tokenizer.Encode(prompt + rejected, addSpecialTokens: true));
    }

    private PreferenceExample Conversation(PreferenceRecord record)
    {
        var tokenizer = Tokenizer(record);
        var (prompt, chosen, rejected) = record.Prompt is { } p
            ? (p.Messages!, record.Chosen.Messages!, record.Rejected.Messages!)
            : ImplicitPrompt.Split(record.Chosen.Messages!, record.Rejected.Messages!);
        if (prompt.Count == 0)
            throw new LoraException($"{record.Location}: the conversation has no prompt (\"chosen\" and \"rejected\" differ from their first message); give a \"prompt\".");
        var (promptText, chosenText) = Render(record, prompt, chosen);
        var (_, rejectedText) = Render(record, prompt, rejected);
        var special = _template.AddSpecialTokens;
        var promptIds = tokenizer.Encode(promptText, special);
        return Split(record, promptIds, tokenizer.Encode(chosenText, special), tokenizer.Encode(rejectedText, special));
    }

    /// <summary>The chat-templated text of <c>prompt + completion</c>, and of its prompt part: everything before the
    /// completion's first assistant content (the assistant header included, as a generation prompt).</summary>
    private (string Prompt, string Full) Render(PreferenceRecord record, IReadOnlyList<ChatMessage> prompt, IReadOnlyList<ChatMessage> completion)
    {
        var segments = _template.Render(new ChatRecord([.. prompt, .. completion]) { Location = record.Location }, _tokens!);
        var promptTargets = prompt.Count(m => m.Role == ChatMessage.Assistant);
        var targets = 0;
        var promptText = string.Empty;
        var inPrompt = true;
        foreach (var segment in segments)
        {
            if (segment.IsTarget && targets++ == promptTargets)
                inPrompt = false;
            if (inPrompt)
                promptText += segment.Text;
        }

        if (inPrompt)
            throw new LoraException($"{record.Location}: the completion has no assistant message for the {_template.Name} template to render.");
        return (promptText, string.Concat(segments.Select(s => s.Text)));
    }

    private PreferenceExample Split(PreferenceRecord record, int[] promptIds, int[] promptChosen, int[] promptRejected)
    {
        if (!StartsWith(promptChosen, promptIds) || !StartsWith(promptRejected, promptIds))
            Stats.PromptBoundaryMismatches++;
        var n = promptIds.Length;
        var chosen = promptChosen.Length > n ? promptChosen[n..] : [];
        var rejected = promptRejected.Length > n ? promptRejected[n..] : [];
        if (chosen.Length == 0 || rejected.Length == 0)
            throw new LoraException($"{record.Location}: the {(chosen.Length == 0 ? "chosen" : "rejected")} completion tokenises to nothing after the prompt.");
        return new PreferenceExample(promptIds, chosen, rejected, record.Margin, record.Location);
    }

    private static bool StartsWith(int[] ids, int[] prefix) =>
        ids.Length >= prefix.Length && ids.AsSpan(0, prefix.Length).SequenceEqual(prefix);
}
