using System.Text.Json;

namespace Lora.Data.Preference;

/// <summary>
/// Reads a preference dataset (a JSON array or JSON lines) as <see cref="PreferenceRecord"/>s, lazily, in TRL's
/// formats: <c>{"prompt"?, "chosen", "rejected", "margin"?}</c> with text or conversation values, or pre-tokenised
/// <c>{"prompt_input_ids"?, "chosen_input_ids", "rejected_input_ids"}</c> (TRL's older names; its newer
/// <c>prompt_ids</c> / <c>chosen_ids</c> / <c>rejected_ids</c> are read too). The first record fixes the format;
/// a record of another format, a missing field or a wrong type is a <see cref="LoraException"/> naming
/// <c>file:line</c> and the field.
/// </summary>
public static class PreferenceReader
{
    private static readonly string[] PromptIdNames = ["prompt_input_ids", "prompt_ids"];
    private static readonly string[] ChosenIdNames = ["chosen_input_ids", "chosen_ids"];
    private static readonly string[] RejectedIdNames = ["rejected_input_ids", "rejected_ids"];

    public static IEnumerable<PreferenceRecord> Read(string path)
    {
        PreferenceKind? kind = null;
        var count = 0;
        foreach (var (line, element) in DatasetReader.JsonRecords(path))
        {
            var record = Parse(element, path, line);
            kind ??= record.Kind;
            if (record.Kind != kind)
                throw new LoraException($"{path}:{line}: this record is {Name(record.Kind)}, but the file's first record is {Name(kind.Value)}; one file holds one format.");
            count++;
            yield return record;
        }

        if (count == 0)
            throw new LoraException($"{path}: no preference records.");
    }

    /// <summary>One JSON object as a preference record.</summary>
    public static PreferenceRecord Parse(JsonElement record, string path, long line)
    {
        var location = $"{path}:{line}";
        if (record.ValueKind != JsonValueKind.Object)
            throw new LoraException($"{location}: expected a JSON object with \"chosen\" and \"rejected\", got {PreferenceJson.Describe(record.ValueKind)}.");
        var margin = Margin(record, location);
        if (PreferenceJson.FirstOf(record, ChosenIdNames) is { } chosenIds)
        {
            var rejected = PreferenceJson.FirstOf(record, RejectedIdNames)
                ?? throw new LoraException($"{location}: pre-tokenised record ({chosenIds.Name}) is missing field \"{RejectedIdNames[ChosenIdNames.ToList().IndexOf(chosenIds.Name)]}\".");
            var prompt = PreferenceJson.FirstOf(record, PromptIdNames);
            return new PreferenceRecord(
                prompt is { } p ? PreferencePart.FromIds(PreferenceJson.Ids(p.Value, p.Name, location)) : null,
                PreferencePart.FromIds(NonEmpty(PreferenceJson.Ids(chosenIds.Value, chosenIds.Name, location), chosenIds.Name, location)),
                PreferencePart.FromIds(NonEmpty(PreferenceJson.Ids(rejected.Value, rejected.Name, location), rejected.Name, location)))
            { Location = location, Margin = margin };
        }

        if (!record.TryGetProperty("chosen", out _))
        {
            var keys = string.Join(", ", record.EnumerateObject().Select(p => $"\"{p.Name}\""));
            throw new LoraException($"{location}: not a preference record ({keys}); expected \"chosen\" and \"rejected\" (with an optional \"prompt\"), or \"chosen_input_ids\" and \"rejected_input_ids\".");
        }

        var chosen = PreferenceJson.TextOrMessages(record, "chosen", location);
        var rejectedPart = PreferenceJson.TextOrMessages(record, "rejected", location);
        if (rejectedPart.Kind != chosen.Kind)
            throw new LoraException($"{location}: field \"rejected\" is {Name(rejectedPart.Kind)} but \"chosen\" is {Name(chosen.Kind)}.");
        PreferencePart? promptPart = null;
        if (record.TryGetProperty("prompt", out var promptValue) && promptValue.ValueKind != JsonValueKind.Null)
        {
            promptPart = PreferenceJson.TextOrMessages(record, "prompt", location);
            // trl/data_utils.py maybe_extract_prompt: a prompt of the other kind than the completions is a label only
            // (the prompt is implicit in both completions), so TRL extracts it from them instead.
            if (promptPart.Kind != chosen.Kind)
                promptPart = null;
        }

        return new PreferenceRecord(promptPart, chosen, rejectedPart) { Location = location, Margin = margin };
    }

    internal static string Name(PreferenceKind kind) => kind switch
    {
        PreferenceKind.Text => "text",
        PreferenceKind.Conversation => "a conversation",
        _ => "pre-tokenised",
    };

    private static double? Margin(JsonElement record, string location)
    {
        if (!record.TryGetProperty("margin", out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind != JsonValueKind.Number || !double.IsFinite(value.GetDouble()))
            throw new LoraException($"{location}: field \"margin\" must be a finite number, got {PreferenceJson.Describe(value.ValueKind)}.");
        return value.GetDouble();
    }

    private static int[] NonEmpty(int[] ids, string name, string location) =>
        ids.Length > 0 ? ids : throw new LoraException($"{location}: field \"{name}\" is empty.");
}
