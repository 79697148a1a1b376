using System.Text.Json;

namespace Lora.Data;

/// <summary>
/// Reads pre-tokenised JSONL: one object per line, <c>{"input_ids": [...], "labels": [...]}</c> with labels optional
/// (default: the input ids) and -100 meaning "ignored". Blank lines are skipped. Streams the file line by line.
/// Errors name the file, the line and the field.
/// </summary>
public static class TokenizedJsonlReader
{
    public static IEnumerable<TokenizedExample> Read(string path)
    {
        if (!File.Exists(path))
            throw new LoraException($"{path}: file not found.");
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            yield return Parse(line, path, lineNumber);
        }
    }

    internal static TokenizedExample Parse(string line, string path, int lineNumber)
    {
        string Where(string what) => $"{path}:{lineNumber}: {what}";
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new LoraException(Where($"not valid JSON ({e.Message})"), e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new LoraException(Where("expected a JSON object with \"input_ids\"."));
            if (!doc.RootElement.TryGetProperty("input_ids", out var idsElement))
                throw new LoraException(Where("missing field \"input_ids\"."));
            var ids = ReadInts(idsElement, Where("\"input_ids\""), allowIgnore: false);
            if (ids.Length == 0)
                throw new LoraException(Where("\"input_ids\" is empty."));
            if (!doc.RootElement.TryGetProperty("labels", out var labelsElement) || labelsElement.ValueKind == JsonValueKind.Null)
                return TokenizedExample.FromIds(ids);
            var labels = ReadInts(labelsElement, Where("\"labels\""), allowIgnore: true);
            if (labels.Length != ids.Length)
                throw new LoraException(Where($"\"labels\" has {labels.Length} entries but \"input_ids\" has {ids.Length}."));
            return new TokenizedExample(ids, labels);
        }
    }

    private static int[] ReadInts(JsonElement element, string field, bool allowIgnore)
    {
        if (element.ValueKind != JsonValueKind.Array)
            throw new LoraException($"{field} must be an array of token ids.");
        var result = new int[element.GetArrayLength()];
        var i = 0;
        foreach (var item in element.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var v) || (v < 0 && !(allowIgnore && v == TokenizedExample.IgnoreIndex)))
                throw new LoraException($"{field}[{i}] is not a valid token id{(allowIgnore ? " or -100" : string.Empty)}.");
            result[i++] = v;
        }

        return result;
    }
}
