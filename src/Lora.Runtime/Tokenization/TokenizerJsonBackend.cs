namespace Lora.Tokenization;

/// <summary>A tokenizer.json pipeline: normalizer → pre_tokenizer → BPE model, and the decoder back.</summary>
internal sealed class TokenizerJsonBackend : TokenizerBackend
{
    private readonly HfNormalizer _normalizer;
    private readonly HfPreTokenizer _preTokenizer;
    private readonly BpeModel _model;
    private readonly HfDecoder _decoder;
    private readonly AddedVocabulary _added;
    private readonly AddedTokenSplitter _normalizedSplitter;

    public TokenizerJsonBackend(HfNormalizer normalizer, HfPreTokenizer preTokenizer, BpeModel model, HfDecoder decoder, AddedVocabulary added)
    {
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _decoder = decoder;
        _added = added;
        _normalizedSplitter = added.NormalizedSplitter(normalizer.Normalize);
    }

    public override void Encode(string segment, bool atStart, List<int> ids)
    {
        var normalized = _normalizer.Normalize(segment);
        var parts = _normalizedSplitter.IsEmpty ? [(normalized, 0, null)] : _normalizedSplitter.Split(normalized);
        foreach (var (text, offset, token) in parts)
        {
            if (token is not null)
            {
                ids.Add(token.Id);
                continue;
            }

            foreach (var piece in _preTokenizer.Split(text, atStart && offset == 0))
            {
                _model.Encode(piece.Text, ids);
            }
        }
    }

    public override string Decode(IReadOnlyList<int> ids)
    {
        var tokens = new List<string>(ids.Count);
        foreach (var id in ids)
        {
            if ((_added.ById(id)?.Content ?? _model.IdToToken(id)) is { } token)
            {
                tokens.Add(token);
            }
        }

        return _decoder.Decode(tokens);
    }

    public override int? TokenToId(string token) => _model.TokenToId(token);

    public override string? IdToToken(int id) => _model.IdToToken(id);

    public override IEnumerable<int> Ids => _model.Vocabulary.Values;
}
