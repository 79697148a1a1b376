namespace Lora.Data.Preference;

/// <summary>The three shapes a field of TRL's preference and prompt datasets takes.</summary>
public enum PreferenceKind
{
    /// <summary>TRL's standard format: plain text, tokenised as is (the tokenizer adds its special tokens).</summary>
    Text,

    /// <summary>TRL's conversational format: a list of <c>{"role", "content"}</c> messages, rendered by a chat
    /// template.</summary>
    Conversation,

    /// <summary>Pre-tokenised ids, used as given: no template, no EOS added, no tokenizer needed.</summary>
    Tokens,
}

/// <summary>
/// One field of a preference or prompt record (<c>prompt</c>, <c>chosen</c>, <c>rejected</c>): text, a
/// conversation, or token ids. Exactly one of <see cref="Text"/>, <see cref="Messages"/>, <see cref="Ids"/> is set.
/// </summary>
public sealed record PreferencePart
{
    private PreferencePart(PreferenceKind kind) => Kind = kind;

    public PreferenceKind Kind { get; }

    public string? Text { get; private init; }

    public IReadOnlyList<ChatMessage>? Messages { get; private init; }

    public int[]? Ids { get; private init; }

    public static PreferencePart FromText(string text) => new(PreferenceKind.Text) { Text = text ?? throw new ArgumentNullException(nameof(text)) };

    public static PreferencePart FromMessages(IReadOnlyList<ChatMessage> messages) => new(PreferenceKind.Conversation) { Messages = messages ?? throw new ArgumentNullException(nameof(messages)) };

    public static PreferencePart FromIds(int[] ids) => new(PreferenceKind.Tokens) { Ids = ids ?? throw new ArgumentNullException(nameof(ids)) };

    /// <summary>How long the part is in its own units (characters, messages, tokens), for messages.</summary>
    internal int Count => Kind switch
    {
        PreferenceKind.Text => Text!.Length,
        PreferenceKind.Conversation => Messages!.Count,
        _ => Ids!.Length,
    };
}
