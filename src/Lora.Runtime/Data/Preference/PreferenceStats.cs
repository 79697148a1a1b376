namespace Lora.Data.Preference;

/// <summary>What reading and preparing a preference dataset did, for one summary line.</summary>
public sealed class PreferenceStats
{
    /// <summary>Records read.</summary>
    public long Records { get; internal set; }

    /// <summary>Pairs produced.</summary>
    public long Pairs { get; internal set; }

    /// <summary>Pairs whose prompt did not tokenise to a prefix of prompt + completion (TRL warns about these).</summary>
    public long PromptBoundaryMismatches { get; internal set; }

    /// <summary>One warning line, or null.</summary>
    public string? Warning => PromptBoundaryMismatches > 0
        ? $"preference data: {PromptBoundaryMismatches} of {Pairs} pairs have a token merged across the prompt/completion boundary (the split follows the prompt's tokens, as in TRL)."
        : null;

    public override string ToString() => $"{Records} records -> {Pairs} pairs";
}
