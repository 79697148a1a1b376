namespace Lora.Data.Preference;

/// <summary>
/// One record of a preference dataset before tokenisation, in TRL's formats (<c>trl/data_utils.py</c>, the DPO and
/// reward trainers' <c>_prepare_dataset</c>): <c>{"prompt", "chosen", "rejected"}</c> as text or as conversations,
/// implicit-prompt pairs (<c>{"chosen", "rejected"}</c>, <see cref="Prompt"/> null: the shared prefix is the prompt),
/// or pre-tokenised ids (<c>prompt_input_ids</c> / <c>chosen_input_ids</c> / <c>rejected_input_ids</c>, or TRL's
/// newer <c>prompt_ids</c> / <c>chosen_ids</c> / <c>rejected_ids</c>). <see cref="Margin"/> is the reward trainer's
/// optional <c>margin</c> column.
/// </summary>
public sealed record PreferenceRecord(PreferencePart? Prompt, PreferencePart Chosen, PreferencePart Rejected) : DataRecord
{
    /// <summary>The record's <c>margin</c> (reward training subtracts it from r_chosen − r_rejected), or null.</summary>
    public double? Margin { get; init; }

    /// <summary>The format of the record: that of <see cref="Chosen"/> (the reader checks the others agree).</summary>
    public PreferenceKind Kind => Chosen.Kind;
}
