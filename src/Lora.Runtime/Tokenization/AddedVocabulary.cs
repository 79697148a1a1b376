namespace Lora.Tokenization;

/// <summary>The added tokens of a tokenizer, by id and by content, with the splitter that finds them in raw
/// input (the ones with <c>normalized: false</c>, which is all of them in Llama, Mistral and Qwen files).</summary>
internal sealed class AddedVocabulary
{
    private readonly Dictionary<int, AddedToken> _byId = [];
    private readonly Dictionary<string, AddedToken> _byContent = new(StringComparer.Ordinal);

    public AddedVocabulary(IEnumerable<AddedToken> tokens)
    {
        foreach (var token in tokens)
        {
            if (token.Content.Length == 0)
            {
                continue; // HF ignores empty added tokens
            }

            _byId[token.Id] = token;
            _byContent[token.Content] = token;
        }

        RawSplitter = new AddedTokenSplitter(_byId.Values.Where(t => !t.Normalized).Select(t => (t.Content, t)));
    }

    public IReadOnlyCollection<AddedToken> Tokens => _byId.Values;

    public AddedTokenSplitter RawSplitter { get; }

    public AddedToken? ById(int id) => _byId.GetValueOrDefault(id);

    public AddedToken? ByContent(string content) => _byContent.GetValueOrDefault(content);

    public bool IsSpecial(int id) => _byId.TryGetValue(id, out var t) && t.Special;

    /// <summary>The splitter for <c>normalized: true</c> tokens, matched on normalised text with their content
    /// normalised the same way (as HF does).</summary>
    public AddedTokenSplitter NormalizedSplitter(Func<string, string> normalize) =>
        new(_byId.Values.Where(t => t.Normalized).Select(t => (normalize(t.Content), t)));
}
