using System.Text.Json;

namespace Lora.Data.Preference;

/// <summary>Reads a prompt-only dataset (JSON array or JSON lines) as <see cref="PromptRecord"/>s, lazily; errors
/// name <c>file:line</c> and the field.</summary>
public static class PromptReader
{
    private static readonly string[] IdNames = ["prompt_input_ids", "prompt_ids", "input_ids"];

    public static IEnumerable<PromptRecord> Read(string path)
    {
        PreferenceKind? kind = null;
        var count = 0;
        foreach (var (line, element) in DatasetReader.JsonRecords(path))
        {
            var record = Parse(element, path, line);
            kind ??= record.Prompt.Kind;
            if (record.Prompt.Kind != kind)
                throw new LoraException($"{path}:{line}: this prompt is {PreferenceReader.Name(record.Prompt.Kind)}, but the file's first is {PreferenceReader.Name(kind.Value)}; one file holds one format.");
            count++;
            yield return record;
        }

        if (count == 0)
            throw new LoraException($"{path}: no prompts.");
    }

    public static PromptRecord Parse(JsonElement record, string path, long line)
    {
        var location = $"{path}:{line}";
        if (record.ValueKind != JsonValueKind.Object)
            throw new LoraException($"{location}: expected a JSON object with \"prompt\", got {PreferenceJson.Describe(record.ValueKind)}.");
        PreferencePart prompt;
        string used;
        if (PreferenceJson.FirstOf(record, IdNames) is { } ids)
        {
            var values = PreferenceJson.Ids(ids.Value, ids.Name, location);
            if (values.Length == 0)
                throw new LoraException($"{location}: field \"{ids.Name}\" is empty.");
            (prompt, used) = (PreferencePart.FromIds(values), ids.Name);
        }
        else if (record.TryGetProperty("prompt", out _))
        {
            (prompt, used) = (PreferenceJson.TextOrMessages(record, "prompt", location), "prompt");
        }
        else
        {
            var keys = string.Join(", ", record.EnumerateObject().Select(p => $"\"{p.Name}\""));
            throw new LoraException($"{location}: not a prompt record ({keys}); expected \"prompt\" (text or messages) or \"prompt_input_ids\".");
        }

        var fields = record.EnumerateObject()
            .Where(p => p.Name != used)
            .ToDictionary(p => p.Name, p => p.Value.Clone(), StringComparer.Ordinal);
        return new PromptRecord(prompt, fields) { Location = location };
    }
}
