using Microsoft.ML.Tokenizers;

namespace Lora.Tokenization;

/// <summary>
/// tokenizer.json's <c>"model": {"type": "BPE"}</c>. Merging is Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>
/// (a port of HF's merge loop, with its byte-level mode for GPT-2 style vocabularies). Two HF options it lacks are
/// added around it: <c>byte_fallback</c> (Llama 2 / Mistral: a character missing from the vocabulary becomes its
/// UTF-8 bytes as <c>&lt;0xXX&gt;</c> tokens) and <c>ignore_merges</c> (Llama 3: a piece that is itself a vocabulary
/// entry is taken whole, as tiktoken does).
/// </summary>
internal sealed class BpeModel
{
    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly Dictionary<int, string> _tokens;
    private readonly bool _byteLevel;
    private readonly bool _ignoreMerges;
    private readonly int[]? _byteTokens; // id of <0xXX> for each byte when byte_fallback is on and all 256 exist
    private readonly int? _unknownId;
    private readonly bool _fuseUnknown;

    private BpeModel(BpeTokenizer bpe, Dictionary<string, int> vocab, bool byteLevel, bool ignoreMerges, int[]? byteTokens, int? unknownId, bool fuseUnknown)
    {
        _bpe = bpe;
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _tokens = new Dictionary<int, string>(vocab.Count);
        foreach (var (token, id) in vocab)
        {
            _tokens.TryAdd(id, token);
        }

        _byteLevel = byteLevel;
        _ignoreMerges = ignoreMerges;
        _byteTokens = byteTokens;
        _unknownId = unknownId;
        _fuseUnknown = fuseUnknown;
    }

    public IReadOnlyDictionary<string, int> Vocabulary => _vocab;

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;

    public string? IdToToken(int id) => _tokens.GetValueOrDefault(id);

    /// <summary>Builds the model; <paramref name="byteLevel"/> comes from the pre-tokenizer (HF maps bytes to
    /// characters there, Microsoft.ML.Tokenizers does it inside the model).</summary>
    public static BpeModel Parse(JsonFields model, bool byteLevel)
    {
        var vocab = new Dictionary<string, int>();
        foreach (var (token, id) in model.Child("vocab").Properties())
        {
            vocab[token] = id.AsInt();
        }

        if (vocab.Count == 0)
        {
            throw model.Child("vocab").Error("is empty");
        }

        var merges = new List<string>();
        if (model.Optional("merges") is { } mergesNode)
        {
            foreach (var merge in mergesNode.Items())
            {
                merges.Add(ParseMerge(merge));
            }
        }

        if (model.Optional("dropout") is { Element.ValueKind: System.Text.Json.JsonValueKind.Number } dropout && dropout.Element.GetDouble() > 0)
        {
            throw dropout.Error("BPE dropout is random at encode time and not supported");
        }

        var unknown = model.OptionalString("unk_token");
        var prefix = NullIfEmpty(model.OptionalString("continuing_subword_prefix"));
        var suffix = NullIfEmpty(model.OptionalString("end_of_word_suffix"));
        var fuseUnknown = model.Bool("fuse_unk", false);
        var byteFallback = model.Bool("byte_fallback", false);
        var ignoreMerges = model.Bool("ignore_merges", false);

        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges,
                UnknownToken = unknown,
                FuseUnknownTokens = fuseUnknown,
                ContinuingSubwordPrefix = prefix,
                EndOfWordSuffix = suffix,
                ByteLevel = byteLevel,
            });
        }
        catch (InvalidOperationException e)
        {
            throw model.Child("merges").Error(e.Message);
        }

        int? unknownId = unknown is null ? null : vocab.TryGetValue(unknown, out var u) ? u : throw model.Child("unk_token").Error($"\"{unknown}\" is not in the vocabulary");

        // Byte fallback is applied around the ML tokenizer by cutting pieces at unknown characters, which is only
        // what HF does when no prefix/suffix decorates the characters; such models do not use byte fallback.
        int[]? byteTokens = null;
        if (byteFallback && !byteLevel)
        {
            if (prefix is not null || suffix is not null)
            {
                throw model.Child("byte_fallback").Error("byte_fallback with continuing_subword_prefix/end_of_word_suffix is not supported");
            }

            byteTokens = new int[256];
            for (var b = 0; b < 256; b++)
            {
                byteTokens[b] = vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
            }
        }

        return new BpeModel(bpe, vocab, byteLevel, ignoreMerges, byteTokens, unknownId, fuseUnknown);
    }

    /// <summary>Encodes one pre-tokenized piece.</summary>
    public void Encode(string piece, List<int> ids)
    {
        if (piece.Length == 0)
        {
            return;
        }

        if (_ignoreMerges && _vocab.TryGetValue(_byteLevel ? ByteLevelAlphabet.Encode(piece) : piece, out var whole))
        {
            ids.Add(whole);
            return;
        }

        if (_byteTokens is null)
        {
            ids.AddRange(_bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
            return;
        }

        EncodeWithByteFallback(piece, ids);
    }

    // HF puts the <0xXX> tokens of an unknown character into the word as symbols without merges, so the BPE result
    // equals encoding the known runs on either side separately.
    private void EncodeWithByteFallback(string piece, List<int> ids)
    {
        var runStart = 0;
        var lastWasUnknown = false;
        var i = 0;
        while (i < piece.Length)
        {
            var length = char.IsHighSurrogate(piece[i]) && i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]) ? 2 : 1;
            var character = piece.AsSpan(i, length);
            if (_vocabBySpan.ContainsKey(character))
            {
                i += length;
                continue;
            }

            if (i > runStart)
            {
                ids.AddRange(_bpe.EncodeToIds(piece[runStart..i], considerPreTokenization: false, considerNormalization: false));
                lastWasUnknown = false;
            }

            lastWasUnknown = AddUnknownCharacter(character, ids, lastWasUnknown);
            i += length;
            runStart = i;
        }

        if (runStart < piece.Length)
        {
            ids.AddRange(_bpe.EncodeToIds(piece[runStart..], considerPreTokenization: false, considerNormalization: false));
        }
    }

    private bool AddUnknownCharacter(ReadOnlySpan<char> character, List<int> ids, bool lastWasUnknown)
    {
        Span<byte> utf8 = stackalloc byte[4];
        var count = System.Text.Encoding.UTF8.GetBytes(character, utf8);
        var all = true;
        for (var b = 0; b < count; b++)
        {
            all &= _byteTokens![utf8[b]] >= 0;
        }

        if (all)
        {
            for (var b = 0; b < count; b++)
            {
                ids.Add(_byteTokens![utf8[b]]);
            }

            return false;
        }

        if (_unknownId is { } unk && !(lastWasUnknown && _fuseUnknown))
        {
            ids.Add(unk);
        }

        return _unknownId is not null;
    }

    private static string ParseMerge(JsonFields merge)
    {
        if (merge.Element.ValueKind == System.Text.Json.JsonValueKind.String)
        {
            var text = merge.AsString();
            var space = text.IndexOf(' ', StringComparison.Ordinal);
            if (space <= 0 || space == text.Length - 1 || text.IndexOf(' ', space + 1) >= 0)
            {
                throw merge.Error($"expected \"left right\", found \"{text}\"");
            }

            return text;
        }

        var pair = merge.Items().Select(p => p.AsString()).ToArray();
        if (pair.Length != 2 || pair[0].Length == 0 || pair[1].Length == 0)
        {
            throw merge.Error("expected a pair of tokens");
        }

        if (pair[0].Contains(' ', StringComparison.Ordinal) || pair[1].Contains(' ', StringComparison.Ordinal))
        {
            // Microsoft.ML.Tokenizers takes merges as "left right" strings.
            throw merge.Error("merges of tokens that contain a space are not supported");
        }

        return $"{pair[0]} {pair[1]}";
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;
}
