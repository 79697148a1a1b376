using System.Text.Json;

namespace Lora.Tokenization;

/// <summary>Typed reads from tokenizer JSON that fail with a <see cref="LoraException"/> naming the file and the
/// field path, instead of the KeyNotFound/InvalidOperation exceptions of <see cref="JsonElement"/>.</summary>
internal readonly record struct JsonFields(string File, string Path, JsonElement Element)
{
    public JsonFields Child(string name)
    {
        if (Element.ValueKind != JsonValueKind.Object || !Element.TryGetProperty(name, out var value))
        {
            throw new LoraException($"{File}: '{Join(name)}' is missing");
        }

        return new JsonFields(File, Join(name), value);
    }

    public JsonFields? Optional(string name) =>
        Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? new JsonFields(File, Join(name), value)
            : null;

    public string String(string name) => Child(name).AsString();

    public string? OptionalString(string name) => Optional(name)?.AsString();

    public bool Bool(string name, bool fallback)
    {
        var field = Optional(name);
        if (field is null)
        {
            return fallback;
        }

        return field.Value.Element.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw field.Value.Error("expected true or false"),
        };
    }

    public string AsString() =>
        Element.ValueKind == JsonValueKind.String ? Element.GetString()! : throw Error($"expected a string, found {Element.ValueKind}");

    public int AsInt() =>
        Element.ValueKind == JsonValueKind.Number && Element.TryGetInt32(out var v) ? v : throw Error($"expected an integer, found {Element.ValueKind}");

    public IEnumerable<JsonFields> Items()
    {
        if (Element.ValueKind != JsonValueKind.Array)
        {
            throw Error($"expected an array, found {Element.ValueKind}");
        }

        var i = 0;
        foreach (var item in Element.EnumerateArray())
        {
            yield return new JsonFields(File, $"{Path}[{i++}]", item);
        }
    }

    public IEnumerable<(string Name, JsonFields Value)> Properties()
    {
        if (Element.ValueKind != JsonValueKind.Object)
        {
            throw Error($"expected an object, found {Element.ValueKind}");
        }

        foreach (var p in Element.EnumerateObject())
        {
            yield return (p.Name, new JsonFields(File, Join(p.Name), p.Value));
        }
    }

    public LoraException Error(string problem) => new(Path.Length == 0 ? $"{File}: {problem}" : $"{File}: '{Path}': {problem}");

    private string Join(string name) => Path.Length == 0 ? name : $"{Path}.{name}";

    /// <summary>Parses a JSON file; syntax errors become a <see cref="LoraException"/> with the line number.</summary>
    public static JsonDocument Parse(string file, Stream stream)
    {
        try
        {
            return JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new LoraException($"{file}: invalid JSON at line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}: {FirstSentence(e.Message)}", e);
        }
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).TrimEnd();
    }
}
