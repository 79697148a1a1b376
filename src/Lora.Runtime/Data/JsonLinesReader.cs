using System.Text.Json;

namespace Lora.Data;

/// <summary>Streams a JSONL file: one JSON value per line, blank lines skipped, each with its 1-based line.</summary>
internal static class JsonLinesReader
{
    public static IEnumerable<(long Line, JsonElement Element)> Read(string path)
    {
        long lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new LoraException($"{path}:{lineNumber}: not valid JSON ({e.Message})", e);
            }

            using (document)
            {
                yield return (lineNumber, document.RootElement);
            }
        }
    }
}
