namespace Lora.Data;

/// <summary>
/// One training/eval example as token ids. <see cref="Labels"/> has the same length; -100 marks positions that do
/// not count in the loss (prompt tokens, padding), as in transformers. The loss shifts by one: position t's logits
/// predict <c>Labels[t + 1]</c>.
/// </summary>
public sealed record TokenizedExample(int[] InputIds, int[] Labels)
{
    public const int IgnoreIndex = -100;

    /// <summary>An example whose labels are its input ids (every token counts).</summary>
    public static TokenizedExample FromIds(int[] ids) => new(ids, ids);

    /// <summary>Tokens that count in the loss (labels after the first position that are not ignored).</summary>
    public int PredictedTokens => Labels.Skip(1).Count(l => l != IgnoreIndex);
}
