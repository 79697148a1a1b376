namespace Lora.Training.Objectives.Rollout;

/// <summary>
/// Rule-based rewards for prompt records that carry the expected answer in a field (default <c>answer</c>), the kind
/// TRL's GRPO examples write as Python functions over <c>completions</c> and a dataset column. The completion is
/// compared after trimming whitespace (special tokens such as eos are already left out of its text). A record without
/// the field is not scored by them (null).
/// </summary>
public static class BuiltInRewards
{
    /// <summary>The names <see cref="Create"/> knows.</summary>
    public static IReadOnlyList<string> Names { get; } = ["exact_answer", "contains_answer", "starts_with_answer"];

    /// <summary>1 when the trimmed completion equals the trimmed answer, else 0.</summary>
    public static RewardFunction ExactAnswer(string field = "answer") =>
        s => s.Prompt.Record.Field(field) is { } answer ? (s.Completion.Trim() == answer.Trim() ? 1 : 0) : null;

    /// <summary>1 when the completion contains the trimmed answer, else 0.</summary>
    public static RewardFunction ContainsAnswer(string field = "answer") =>
        s => s.Prompt.Record.Field(field) is { } answer ? (s.Completion.Contains(answer.Trim(), StringComparison.Ordinal) ? 1 : 0) : null;

    /// <summary>1 when the trimmed completion starts with the trimmed answer, else 0.</summary>
    public static RewardFunction StartsWithAnswer(string field = "answer") =>
        s => s.Prompt.Record.Field(field) is { } answer ? (s.Completion.TrimStart().StartsWith(answer.Trim(), StringComparison.Ordinal) ? 1 : 0) : null;

    /// <summary>A built-in reward by name, reading the answer from <paramref name="field"/>.</summary>
    public static RewardSource Create(string name, string field = "answer", double weight = 1) => name switch
    {
        "exact_answer" => RewardSource.Function(name, ExactAnswer(field), weight),
        "contains_answer" => RewardSource.Function(name, ContainsAnswer(field), weight),
        "starts_with_answer" => RewardSource.Function(name, StartsWithAnswer(field), weight),
        _ => throw new LoraException($"unknown reward function '{name}' (built in: {string.Join(", ", Names)}; from C#, pass any RewardFunction)."),
    };
}
