using System.Text.Json;

namespace Lora.Data;

/// <summary>
/// Turns one JSON record into a <see cref="DataRecord"/> of a given <see cref="DataFormat"/>, checking its fields.
/// Shared by the JSON-array and JSON-lines readers so both report the same <c>file:line: field</c> errors.
/// </summary>
internal static class RecordParser
{
    /// <summary>The format a record's keys suggest, or null when none fits.</summary>
    public static DataFormat? Detect(JsonElement record)
    {
        if (record.ValueKind != JsonValueKind.Object)
            return null;
        if (record.TryGetProperty("messages", out _))
            return DataFormat.Chat;
        if (record.TryGetProperty("instruction", out _) || record.TryGetProperty("output", out _))
            return DataFormat.Alpaca;
        if (record.TryGetProperty("input_ids", out _))
            return DataFormat.Tokenized;
        if (record.TryGetProperty("text", out _))
            return DataFormat.Text;
        return null;
    }

    public static DataRecord Parse(JsonElement record, DataFormat format, string path, long line)
    {
        var location = $"{path}:{line}";
        if (record.ValueKind != JsonValueKind.Object)
            throw new LoraException($"{location}: expected a JSON object, got {Describe(record.ValueKind)}.");
        return format switch
        {
            DataFormat.Alpaca => new AlpacaRecord(
                RequiredString(record, "instruction", location),
                OptionalString(record, "input", location),
                RequiredString(record, "output", location)) { Location = location },
            DataFormat.Chat => new ChatRecord(Messages(record, location)) { Location = location },
            DataFormat.Text => new TextRecord(RequiredString(record, "text", location)) { Location = location },
            DataFormat.Tokenized => new TokenizedRecord(TokenizedJsonlReader.Parse(record.GetRawText(), path, (int)line)) { Location = location },
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "a concrete format is needed"),
        };
    }

    private static List<ChatMessage> Messages(JsonElement record, string location)
    {
        if (!record.TryGetProperty("messages", out var messages))
            throw new LoraException($"{location}: missing field \"messages\".");
        if (messages.ValueKind != JsonValueKind.Array)
            throw new LoraException($"{location}: field \"messages\" must be an array, got {Describe(messages.ValueKind)}.");
        var result = new List<ChatMessage>(messages.GetArrayLength());
        var i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var field = $"\"messages\"[{i}]";
            if (message.ValueKind != JsonValueKind.Object)
                throw new LoraException($"{location}: {field} must be an object with \"role\" and \"content\".");
            var role = RequiredString(message, "role", location, field + ".");
            if (!ChatMessage.Roles.Contains(role))
                throw new LoraException($"{location}: {field}.role must be one of {string.Join(", ", ChatMessage.Roles)}, got \"{role}\".");
            result.Add(new ChatMessage(role, RequiredString(message, "content", location, field + ".")));
            i++;
        }

        if (result.Count == 0)
            throw new LoraException($"{location}: field \"messages\" is empty.");
        return result;
    }

    private static string RequiredString(JsonElement record, string name, string location, string prefix = "")
    {
        if (!record.TryGetProperty(name, out var value))
            throw new LoraException($"{location}: missing field {prefix}\"{name}\".");
        if (value.ValueKind != JsonValueKind.String)
            throw new LoraException($"{location}: field {prefix}\"{name}\" must be a string, got {Describe(value.ValueKind)}.");
        return value.GetString()!;
    }

    private static string OptionalString(JsonElement record, string name, string location)
    {
        if (!record.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return string.Empty;
        if (value.ValueKind != JsonValueKind.String)
            throw new LoraException($"{location}: field \"{name}\" must be a string, got {Describe(value.ValueKind)}.");
        return value.GetString()!;
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };
}
