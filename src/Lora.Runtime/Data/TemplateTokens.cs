using Lora.Tokenization;

namespace Lora.Data;

/// <summary>
/// The special-token strings a template writes into its text (as HF chat templates do with <c>bos_token</c> and
/// <c>eos_token</c>); the tokenizer matches them back to their ids.
/// </summary>
public sealed record TemplateTokens(string? Bos, string? Eos)
{
    public static TemplateTokens From(HfTokenizer tokenizer) => new(
        tokenizer.BosTokenId is { } bos ? tokenizer.IdToToken(bos) : null,
        tokenizer.EosTokenId is { } eos ? tokenizer.IdToToken(eos) : null);

    /// <summary>The eos string, which every target ends with.</summary>
    internal string RequireEos(string template) =>
        Eos ?? throw new LoraException($"the {template} template ends each target with the eos token, but the tokenizer has no eos_token.");
}
