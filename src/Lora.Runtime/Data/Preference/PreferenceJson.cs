using System.Text.Json;

namespace Lora.Data.Preference;

/// <summary>Field readers shared by <see cref="PreferenceReader"/> and <see cref="PromptReader"/>: every error
/// names <c>file:line</c> and the field.</summary>
internal static class PreferenceJson
{
    /// <summary>A text or conversation field (<c>"prompt": "…"</c> or <c>"prompt": [{"role", "content"}, …]</c>).</summary>
    public static PreferencePart TextOrMessages(JsonElement record, string name, string location)
    {
        if (!record.TryGetProperty(name, out var value))
            throw new LoraException($"{location}: missing field \"{name}\".");
        return value.ValueKind switch
        {
            JsonValueKind.String => PreferencePart.FromText(value.GetString()!),
            JsonValueKind.Array => PreferencePart.FromMessages(Messages(value, name, location)),
            _ => throw new LoraException($"{location}: field \"{name}\" must be a string or a list of {{\"role\", \"content\"}} messages, got {Describe(value.ValueKind)}."),
        };
    }

    /// <summary>A pre-tokenised field: an array of non-negative token ids.</summary>
    public static int[] Ids(JsonElement value, string name, string location)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw new LoraException($"{location}: field \"{name}\" must be an array of token ids, got {Describe(value.ValueKind)}.");
        var ids = new int[value.GetArrayLength()];
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id) || id < 0)
                throw new LoraException($"{location}: field \"{name}\"[{i}] is not a token id (a non-negative integer).");
            ids[i++] = id;
        }

        return ids;
    }

    /// <summary>The first of <paramref name="names"/> the record has, with its name; null when it has none.</summary>
    public static (string Name, JsonElement Value)? FirstOf(JsonElement record, params string[] names)
    {
        foreach (var name in names)
        {
            if (record.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null)
                return (name, value);
        }

        return null;
    }

    public static List<ChatMessage> Messages(JsonElement array, string name, string location)
    {
        var result = new List<ChatMessage>(array.GetArrayLength());
        var i = 0;
        foreach (var message in array.EnumerateArray())
        {
            var field = $"\"{name}\"[{i}]";
            if (message.ValueKind != JsonValueKind.Object)
                throw new LoraException($"{location}: field {field} must be an object with \"role\" and \"content\", got {Describe(message.ValueKind)}.");
            var role = StringField(message, "role", location, field);
            if (!ChatMessage.Roles.Contains(role))
                throw new LoraException($"{location}: field {field}.role must be one of {string.Join(", ", ChatMessage.Roles)}, got \"{role}\".");
            result.Add(new ChatMessage(role, StringField(message, "content", location, field)));
            i++;
        }

        if (result.Count == 0)
            throw new LoraException($"{location}: field \"{name}\" is an empty list of messages.");
        return result;
    }

    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private static string StringField(JsonElement message, string name, string location, string field)
    {
        if (!message.TryGetProperty(name, out var value))
            throw new LoraException($"{location}: field {field} has no \"{name}\".");
        if (value.ValueKind != JsonValueKind.String)
            throw new LoraException($"{location}: field {field}.{name} must be a string, got {Describe(value.ValueKind)}.");
        return value.GetString()!;
    }
}
