using System.Text.Json;

namespace Lora.Data.Preference;

/// <summary>
/// One record of a prompt-only dataset (TRL's format for the online trainers, GRPO and PPO): <c>{"prompt": …}</c>
/// as text or a conversation, or pre-tokenised <c>{"prompt_input_ids": […]}</c> (or <c>prompt_ids</c>, or
/// <c>input_ids</c> as TRL's PPO examples tokenise it). Every other field (an expected <c>answer</c>, a
/// <c>solution</c>) is kept in <see cref="Fields"/> and handed to the reward functions, as TRL passes the dataset's
/// extra columns to them as keyword arguments.
/// </summary>
public sealed record PromptRecord(PreferencePart Prompt, IReadOnlyDictionary<string, JsonElement> Fields) : DataRecord
{
    /// <summary>A string field (for example the expected answer), or null when absent or not a string.</summary>
    public string? Field(string name) =>
        Fields.TryGetValue(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}

/// <summary>A tokenised prompt with what the reward functions see of it: its text (or messages) and its fields.</summary>
/// <param name="PromptIds">The prompt's tokens, as the model is fed them (chat template applied, generation prompt
/// added).</param>
/// <param name="Record">The record it came from.</param>
public sealed record PromptExample(int[] PromptIds, PromptRecord Record)
{
    /// <summary>The prompt as text: the record's text, or its rendered conversation, or the decoded ids.</summary>
    public string PromptText { get; init; } = string.Empty;
}
