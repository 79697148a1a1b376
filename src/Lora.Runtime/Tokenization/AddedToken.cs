namespace Lora.Tokenization;

/// <summary>
/// One entry of tokenizer.json's <c>added_tokens</c> (or tokenizer_config.json's <c>added_tokens_decoder</c>):
/// text matched verbatim before the model runs. <see cref="Special"/> tokens are the ones
/// <c>skipSpecialTokens</c> drops when decoding.
/// </summary>
/// <param name="Id">Token id.</param>
/// <param name="Content">The literal text.</param>
/// <param name="Special">Whether decoding with <c>skipSpecialTokens</c> drops it.</param>
/// <param name="LStrip">Whether the match swallows whitespace on its left.</param>
/// <param name="RStrip">Whether the match swallows whitespace on its right.</param>
/// <param name="SingleWord">Whether it only matches when not inside a word.</param>
/// <param name="Normalized">Whether it is matched on normalised text rather than on the raw input.</param>
public sealed record AddedToken(
    int Id,
    string Content,
    bool Special,
    bool LStrip = false,
    bool RStrip = false,
    bool SingleWord = false,
    bool Normalized = false);
