namespace Lora.Tokenization;

/// <summary>
/// What differs between tokenizer.json, SentencePiece and tiktoken files: encoding text that holds no added
/// tokens, decoding, and the model vocabulary. Added tokens and bos/eos handling sit above, in
/// <see cref="HfTokenizer"/>, and are shared.
/// </summary>
internal abstract class TokenizerBackend
{
    /// <summary>Appends the ids of <paramref name="segment"/>, a stretch of input between added tokens;
    /// <paramref name="atStart"/> says whether it begins the input (Metaspace's "first" prefix scheme).</summary>
    public abstract void Encode(string segment, bool atStart, List<int> ids);

    /// <summary>Decodes ids (model or added-token ids; unknown ids are skipped, as HF does).</summary>
    public abstract string Decode(IReadOnlyList<int> ids);

    public abstract int? TokenToId(string token);

    public abstract string? IdToToken(int id);

    /// <summary>Ids of the model vocabulary (without added tokens).</summary>
    public abstract IEnumerable<int> Ids { get; }
}
