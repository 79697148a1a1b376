using System.Text.Json;

namespace Lora.Tokenization;

/// <summary>
/// A Hugging Face tokenizer loaded from a model directory, giving the same ids as HF <c>tokenizers</c>.
/// Reads <c>tokenizer.json</c> (BPE: SentencePiece-style with byte fallback as in Llama 2 / Mistral, or byte-level
/// as in Llama 3 / Qwen), else <c>tokenizer.model</c> (SentencePiece protobuf, or a tiktoken rank file), else a
/// <c>*.tiktoken</c> file; plus <c>tokenizer_config.json</c> for bos/eos/pad and whether bos/eos are added.
/// The model maths is Microsoft.ML.Tokenizers'; this type adds HF's added-token matching, pre/post-processing and
/// decoders around it. Instances are immutable and safe to share across threads.
/// </summary>
public sealed class HfTokenizer
{
    private readonly TokenizerBackend _backend;
    private readonly AddedVocabulary _added;
    private readonly SpecialTokenTemplate _template;

    private HfTokenizer(TokenizerBackend backend, AddedVocabulary added, SpecialTokenTemplate template, TokenizerConfig config, string source)
    {
        _backend = backend;
        _added = added;
        _template = template;
        Source = source;
        BosTokenId = Resolve(config.BosToken, "bos_token", source);
        EosTokenId = Resolve(config.EosToken, "eos_token", source);
        PadTokenId = Resolve(config.PadToken, "pad_token", source);
        UnkTokenId = Resolve(config.UnkToken, "unk_token", source);
        VocabSize = backend.Ids.Concat(added.Tokens.Select(t => t.Id)).Distinct().Count();
    }

    /// <summary>The file the vocabulary came from (tokenizer.json, tokenizer.model or *.tiktoken).</summary>
    public string Source { get; }

    public int? BosTokenId { get; }

    public int? EosTokenId { get; }

    public int? PadTokenId { get; }

    public int? UnkTokenId { get; }

    /// <summary>Number of distinct ids, added tokens included (HF's <c>len(tokenizer)</c>).</summary>
    public int VocabSize { get; }

    /// <summary>The added tokens (special or not), matched in text before the model runs.</summary>
    public IReadOnlyCollection<AddedToken> AddedTokens => _added.Tokens;

    /// <summary>
    /// Loads the tokenizer of a model directory (or the directory of a tokenizer.json path).
    /// </summary>
    /// <exception cref="LoraException">The directory or its tokenizer files are missing, malformed or of an
    /// unsupported kind; the message names the file and the problem.</exception>
    public static HfTokenizer Load(string path)
    {
        var directory = File.Exists(path) ? Path.GetDirectoryName(Path.GetFullPath(path))! : path;
        if (!Directory.Exists(directory))
        {
            throw new LoraException($"tokenizer directory '{path}' does not exist");
        }

        var config = TokenizerConfig.Load(directory);
        var json = File.Exists(path) && Path.GetFileName(path) == "tokenizer.json" ? path : Path.Combine(directory, "tokenizer.json");
        if (File.Exists(json))
        {
            return LoadTokenizerJson(json, config);
        }

        var model = Path.Combine(directory, "tokenizer.model");
        var tiktoken = File.Exists(model) ? model : Directory.EnumerateFiles(directory, "*.tiktoken").Order(StringComparer.Ordinal).FirstOrDefault();
        if (tiktoken is not null && TiktokenBackend.LooksLikeTiktoken(tiktoken))
        {
            var added = new AddedVocabulary(config.AddedTokens);
            var backend = TiktokenBackend.Load(tiktoken, added);
            var template = SpecialTokenTemplate.Empty;
            return WithConfigTemplate(backend, added, template, config, tiktoken, defaultAddBos: true);
        }

        if (File.Exists(model))
        {
            var backend = SentencePieceBackend.Load(model, config.AddedTokens);
            return WithConfigTemplate(backend, backend.Added, SpecialTokenTemplate.Empty, config with
            {
                BosToken = config.BosToken ?? backend.Model.BeginningOfSentenceToken,
                EosToken = config.EosToken ?? backend.Model.EndOfSentenceToken,
                UnkToken = config.UnkToken ?? backend.Model.UnknownToken,
            }, model, defaultAddBos: true);
        }

        throw new LoraException($"{Path.Combine(directory, "tokenizer.json")}: not found (nor tokenizer.model or *.tiktoken) in '{directory}'");
    }

    /// <summary>Encodes <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the bos/eos of the
    /// post-processor (or of tokenizer_config.json's add_bos_token/add_eos_token) are added, as HF does by default.
    /// Added tokens written in the text (e.g. "&lt;s&gt;") are always matched.</summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        foreach (var (segment, offset, token) in _added.RawSplitter.Split(text))
        {
            if (token is not null)
            {
                ids.Add(token.Id);
            }
            else
            {
                _backend.Encode(segment, atStart: offset == 0, ids);
            }
        }

        return addSpecialTokens ? _template.Apply(ids) : [.. ids];
    }

    /// <summary>Decodes ids to text with the tokenizer's decoder; unknown ids are skipped. With
    /// <paramref name="skipSpecialTokens"/> added tokens marked special are dropped.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = skipSpecialTokens ? ids.Where(id => !_added.IsSpecial(id)).ToList() : ids.ToList();
        return _backend.Decode(kept);
    }

    /// <summary>The id of a vocabulary or added token, or null.</summary>
    public int? TokenToId(string token) => _added.ByContent(token)?.Id ?? _backend.TokenToId(token);

    /// <summary>The token string of an id (as stored in the vocabulary, e.g. "▁Hello" or "ĠHello"), or null.</summary>
    public string? IdToToken(int id) => _added.ById(id)?.Content ?? _backend.IdToToken(id);

    private static HfTokenizer LoadTokenizerJson(string path, TokenizerConfig config)
    {
        JsonDocument document;
        using (var stream = File.OpenRead(path))
        {
            document = JsonFields.Parse(path, stream);
        }

        using (document)
        {
            var root = new JsonFields(path, "", document.RootElement);
            if (root.Element.ValueKind != JsonValueKind.Object)
            {
                throw root.Error("expected a JSON object");
            }

            var model = root.Child("model");
            var type = model.OptionalString("type") ?? (model.Optional("merges") is not null ? "BPE" : null);
            if (type != "BPE")
            {
                throw (model.Optional("type") ?? model).Error($"model type \"{type ?? "(none)"}\" is not supported (only BPE)");
            }

            var added = new AddedVocabulary(root.Optional("added_tokens") is { } list
                ? list.Items().Select(t => TokenizerConfig.ReadAddedToken(t, t.Child("id").AsInt())).ToList()
                : config.AddedTokens);
            var normalizer = HfNormalizer.Parse(root.Optional("normalizer"));
            var preTokenizer = HfPreTokenizer.Parse(root.Optional("pre_tokenizer"));
            var bpe = BpeModel.Parse(model, preTokenizer.ByteLevel);
            var decoder = HfDecoder.Parse(root.Optional("decoder"));
            var template = SpecialTokenTemplate.Parse(root.Optional("post_processor"));
            var backend = new TokenizerJsonBackend(normalizer, preTokenizer, bpe, decoder, added);
            return WithConfigTemplate(backend, added, template, config, path, defaultAddBos: null);
        }
    }

    // defaultAddBos: what to do when the config does not say (null: keep the template).
    private static HfTokenizer WithConfigTemplate(TokenizerBackend backend, AddedVocabulary added, SpecialTokenTemplate template, TokenizerConfig config, string source, bool? defaultAddBos)
    {
        int? Id(string? token) => token is null ? null : added.ByContent(token)?.Id ?? backend.TokenToId(token);
        var addBos = config.AddBosToken ?? defaultAddBos;
        var addEos = config.AddEosToken ?? (defaultAddBos is null ? null : false);
        var effective = template.Override(addBos, Id(config.BosToken), addEos, Id(config.EosToken));
        return new HfTokenizer(backend, added, effective, config, source);
    }

    private int? Resolve(string? token, string field, string source)
    {
        if (token is null)
        {
            return null;
        }

        return TokenToId(token) ?? throw new LoraException(
            $"{Path.Combine(Path.GetDirectoryName(source) ?? ".", TokenizerConfig.FileName)}: '{field}' \"{token}\" is not in the vocabulary of {Path.GetFileName(source)}");
    }
}
