namespace Lora.Data.Preference;

/// <summary>
/// A tokenised preference pair, as TRL's DPO trainer keeps it (<c>prompt_ids</c>, <c>chosen_ids</c>,
/// <c>rejected_ids</c>): the completions do not repeat the prompt. The reward model reads
/// <c>prompt + chosen</c> and <c>prompt + rejected</c>; DPO scores the completion tokens only.
/// </summary>
/// <param name="PromptIds">The prompt (may be empty for pre-tokenised pairs without one).</param>
/// <param name="ChosenIds">The preferred completion.</param>
/// <param name="RejectedIds">The other completion.</param>
/// <param name="Margin">The record's margin (reward training), or null.</param>
/// <param name="Location"><c>file:line</c> of the record (empty when built in code).</param>
public sealed record PreferenceExample(int[] PromptIds, int[] ChosenIds, int[] RejectedIds, double? Margin = null, string Location = "")
{
    /// <summary><c>prompt + chosen</c>.</summary>
    public int[] ChosenSequence => [.. PromptIds, .. ChosenIds];

    /// <summary><c>prompt + rejected</c>.</summary>
    public int[] RejectedSequence => [.. PromptIds, .. RejectedIds];

    /// <summary>The longer of the two full sequences (the sampler's length).</summary>
    public int Length => PromptIds.Length + Math.Max(ChosenIds.Length, RejectedIds.Length);
}
