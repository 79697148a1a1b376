using Microsoft.ML.Tokenizers;

namespace Lora.Tokenization;

/// <summary>
/// <c>tokenizer.model</c> in SentencePiece protobuf form (Llama 2, Mistral, when no tokenizer.json is shipped),
/// encoded and decoded by Microsoft.ML.Tokenizers' <see cref="SentencePieceTokenizer"/>. Each stretch between
/// added tokens gets SentencePiece's "▁" dummy prefix, as transformers' slow LlamaTokenizer (legacy mode) does.
/// </summary>
internal sealed class SentencePieceBackend : TokenizerBackend
{
    private readonly SentencePieceTokenizer _sp;
    private readonly AddedVocabulary _added;
    private readonly Dictionary<int, string> _tokens;

    private SentencePieceBackend(SentencePieceTokenizer sp, AddedVocabulary added)
    {
        _sp = sp;
        _added = added;
        _tokens = [];
        foreach (var (token, id) in sp.Vocabulary)
        {
            _tokens.TryAdd(id, token);
        }
    }

    public SentencePieceTokenizer Model => _sp;

    /// <summary>Loads the protobuf; the model's own unk/bos/eos join the added tokens as special ones, so they are
    /// matched in text and skipped by <c>skipSpecialTokens</c> like the slow tokenizer's.</summary>
    public static SentencePieceBackend Load(string path, IReadOnlyList<AddedToken> configAdded)
    {
        SentencePieceTokenizer sp;
        try
        {
            using var stream = File.OpenRead(path);
            sp = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not IOException and not UnauthorizedAccessException)
        {
            throw new LoraException($"{path}: not a readable SentencePiece model: {e.Message}", e);
        }

        var added = configAdded.ToList();
        foreach (var (token, id) in new[] { (sp.UnknownToken, sp.UnknownId), (sp.BeginningOfSentenceToken, sp.BeginningOfSentenceId), (sp.EndOfSentenceToken, sp.EndOfSentenceId) })
        {
            if (!string.IsNullOrEmpty(token) && id >= 0 && added.All(a => a.Content != token))
            {
                added.Add(new AddedToken(id, token, Special: true));
            }
        }

        return new SentencePieceBackend(sp, new AddedVocabulary(added));
    }

    public AddedVocabulary Added => _added;

    public override void Encode(string segment, bool atStart, List<int> ids) =>
        ids.AddRange(_sp.EncodeToIds(segment, addBeginningOfSentence: false, addEndOfSentence: false));

    // Model ids are decoded in runs by SentencePiece; added tokens are written as their text.
    public override string Decode(IReadOnlyList<int> ids)
    {
        var text = new System.Text.StringBuilder();
        var run = new List<int>();
        foreach (var id in ids)
        {
            if (_added.ById(id) is { } token)
            {
                Flush();
                text.Append(token.Content);
            }
            else if (_tokens.ContainsKey(id))
            {
                run.Add(id);
            }
        }

        Flush();
        return text.ToString();

        void Flush()
        {
            if (run.Count > 0)
            {
                text.Append(_sp.Decode(run, considerSpecialTokens: false));
                run.Clear();
            }
        }
    }

    public override int? TokenToId(string token) => _sp.Vocabulary.TryGetValue(token, out var id) ? id : null;

    public override string? IdToToken(int id) => _tokens.GetValueOrDefault(id);

    public override IEnumerable<int> Ids => _tokens.Keys;
}
