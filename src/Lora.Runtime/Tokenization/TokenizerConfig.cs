using System.Text.Json;

namespace Lora.Tokenization;

/// <summary>
/// The parts of transformers' tokenizer_config.json the tokenizer needs: the names of bos/eos/pad/unk, whether
/// bos/eos are added, and <c>added_tokens_decoder</c> (the added tokens when there is no tokenizer.json).
/// Token names are strings or AddedToken objects (<c>{"content": "&lt;s&gt;", ...}</c>).
/// </summary>
internal sealed record TokenizerConfig(
    string? BosToken,
    string? EosToken,
    string? PadToken,
    string? UnkToken,
    bool? AddBosToken,
    bool? AddEosToken,
    IReadOnlyList<AddedToken> AddedTokens)
{
    public const string FileName = "tokenizer_config.json";

    public static TokenizerConfig Empty { get; } = new(null, null, null, null, null, null, []);

    /// <summary>Reads <c>tokenizer_config.json</c> from <paramref name="directory"/>; an absent file is an empty config.</summary>
    public static TokenizerConfig Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return Empty;
        }

        using var stream = File.OpenRead(path);
        using var document = JsonFields.Parse(path, stream);
        var root = new JsonFields(path, "", document.RootElement);
        if (root.Element.ValueKind != JsonValueKind.Object)
        {
            throw root.Error("expected a JSON object");
        }

        var added = new List<AddedToken>();
        if (root.Optional("added_tokens_decoder") is { } decoder)
        {
            foreach (var (id, token) in decoder.Properties())
            {
                if (!int.TryParse(id, out var tokenId))
                {
                    throw token.Error("the key must be a token id");
                }

                added.Add(ReadAddedToken(token, tokenId));
            }
        }

        return new TokenizerConfig(
            TokenName(root, "bos_token"),
            TokenName(root, "eos_token"),
            TokenName(root, "pad_token"),
            TokenName(root, "unk_token"),
            root.Optional("add_bos_token") is null ? null : root.Bool("add_bos_token", false),
            root.Optional("add_eos_token") is null ? null : root.Bool("add_eos_token", false),
            added);
    }

    /// <summary>One added token in HF's serialised form (tokenizer.json <c>added_tokens</c> entries carry the id inside).</summary>
    internal static AddedToken ReadAddedToken(JsonFields token, int id) => new(
        id,
        token.String("content"),
        token.Bool("special", false),
        token.Bool("lstrip", false),
        token.Bool("rstrip", false),
        token.Bool("single_word", false),
        token.Bool("normalized", !token.Bool("special", false)));

    private static string? TokenName(JsonFields root, string field) => root.Optional(field) switch
    {
        null => null,
        { Element.ValueKind: JsonValueKind.String } name => name.AsString(),
        { Element.ValueKind: JsonValueKind.Object } name => name.String("content"),
        { } other => throw other.Error("expected a token string or {\"content\": ...}"),
    };
}
