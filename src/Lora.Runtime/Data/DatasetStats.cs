namespace Lora.Data;

/// <summary>
/// What tokenising a dataset did, filled in while its examples are enumerated, so the trainer can print one line
/// (<see cref="Warning"/>) instead of one per example.
/// </summary>
public sealed class DatasetStats
{
    /// <summary>Records read from the file (plain-text lines count one each).</summary>
    public long Records { get; internal set; }

    /// <summary>Examples produced (after drops; plain-text blocks count one each).</summary>
    public long Examples { get; internal set; }

    /// <summary>Examples cut to max_length (from the end).</summary>
    public long Truncated { get; internal set; }

    /// <summary>Examples dropped because no target token was left to predict (every shifted label -100).</summary>
    public long DroppedNoTarget { get; internal set; }

    /// <summary>Input tokens of the produced examples.</summary>
    public long Tokens { get; internal set; }

    /// <summary>Tokens that count in the loss (shifted labels not -100).</summary>
    public long TargetTokens { get; internal set; }

    /// <summary>
    /// Examples whose prompt did not tokenise to a prefix of prompt + target (a merge across the boundary); their
    /// prompt/target split follows the prompt's token count, as Stanford Alpaca and TRL do.
    /// </summary>
    public long PromptBoundaryMismatches { get; internal set; }

    /// <summary>One warning line when examples were truncated, dropped or split oddly; null when nothing happened.</summary>
    public string? Warning
    {
        get
        {
            var parts = new List<string>();
            if (Truncated > 0)
                parts.Add($"{Truncated} of {Records} truncated to max_length");
            if (DroppedNoTarget > 0)
                parts.Add($"{DroppedNoTarget} dropped (no target token left after truncation)");
            if (PromptBoundaryMismatches > 0)
                parts.Add($"{PromptBoundaryMismatches} with a token merged across the prompt/response boundary");
            return parts.Count == 0 ? null : "dataset: " + string.Join("; ", parts) + ".";
        }
    }

    public override string ToString() =>
        $"{Records} records -> {Examples} examples, {Tokens} tokens ({TargetTokens} in the loss); {Truncated} truncated, {DroppedNoTarget} dropped";
}
