using System.Text.Json;

namespace Lora.Data;

/// <summary>
/// Reads a dataset file as a lazy stream of <see cref="DataRecord"/>s: Alpaca / chat / text / pre-tokenised records in
/// a JSON array or JSONL, or a plain-text file. Nothing is loaded whole, so multi-GB files work; each enumeration
/// reads the file again. Errors are <see cref="LoraException"/>s naming <c>file:line</c> and the field.
/// </summary>
public static class DatasetReader
{
    private static readonly string[] PlainTextExtensions = [".txt", ".text", ".md"];
    private static readonly string[] JsonExtensions = [".json", ".jsonl", ".ndjson"];

    /// <summary>
    /// Detects the layout (from the extension and the first byte: <c>[</c> is a JSON array, <c>{</c> JSON lines) and,
    /// when <paramref name="format"/> is <see cref="DataFormat.Auto"/>, the format from the first record's keys.
    /// </summary>
    public static (DataFormat Format, DataLayout Layout) Detect(string path, DataFormat format = DataFormat.Auto)
    {
        if (!File.Exists(path))
            throw new LoraException($"{path}: file not found.");
        var extension = Path.GetExtension(path).ToLowerInvariant();
        var layout = PlainTextExtensions.Contains(extension) ? DataLayout.PlainText : FirstByte(path) switch
        {
            null => throw new LoraException($"{path}: no examples (the file is empty)."),
            (byte)'[' => DataLayout.JsonArray,
            (byte)'{' => DataLayout.JsonLines,
            _ when JsonExtensions.Contains(extension) => throw new LoraException($"{path}:1: not valid JSON (expected '[' or '{{' to start the file)."),
            _ => DataLayout.PlainText,
        };

        if (layout == DataLayout.PlainText)
        {
            if (format is not (DataFormat.Auto or DataFormat.Text))
                throw new LoraException($"{path}: a plain-text file can only be read as text, not {format}.");
            return (DataFormat.Text, layout);
        }

        if (format != DataFormat.Auto)
            return (format, layout);

        foreach (var (line, element) in Elements(path, layout))
        {
            return (RecordParser.Detect(element) ?? throw Undetectable(path, line, element), layout);
        }

        throw new LoraException($"{path}: no examples.");
    }

    /// <summary>The records of <paramref name="path"/>, read lazily. The format is detected (or checked) at once.</summary>
    public static IEnumerable<DataRecord> Read(string path, DataFormat format = DataFormat.Auto)
    {
        var (detected, layout) = Detect(path, format);
        return Records(path, detected, layout);
    }

    private static IEnumerable<DataRecord> Records(string path, DataFormat format, DataLayout layout)
    {
        var count = 0L;
        var records = layout == DataLayout.PlainText
            ? PlainTextReader.Read(path)
            : Elements(path, layout).Select(e => RecordParser.Parse(e.Element, format, path, e.Line));
        foreach (var record in records)
        {
            count++;
            yield return record;
        }

        if (count == 0)
            throw new LoraException($"{path}: no examples.");
    }

    /// <summary>The JSON records of a JSON-array or JSON-lines file, each with its 1-based line (the preference and
    /// prompt readers share the layout detection and the <c>file:line</c> errors of the instruction formats).</summary>
    internal static IEnumerable<(long Line, JsonElement Element)> JsonRecords(string path)
    {
        if (!File.Exists(path))
            throw new LoraException($"{path}: file not found.");
        var layout = FirstByte(path) switch
        {
            null => throw new LoraException($"{path}: no examples (the file is empty)."),
            (byte)'[' => DataLayout.JsonArray,
            (byte)'{' => DataLayout.JsonLines,
            _ => throw new LoraException($"{path}:1: not valid JSON (expected '[' or '{{' to start the file: a JSON array or JSON lines)."),
        };
        return Elements(path, layout);
    }

    private static IEnumerable<(long Line, JsonElement Element)> Elements(string path, DataLayout layout) =>
        layout == DataLayout.JsonArray ? JsonArrayReader.Read(path) : JsonLinesReader.Read(path);

    private static LoraException Undetectable(string path, long line, JsonElement element)
    {
        var keys = element.ValueKind == JsonValueKind.Object
            ? string.Join(", ", element.EnumerateObject().Select(p => $"\"{p.Name}\""))
            : element.ValueKind.ToString();
        return new LoraException(
            $"{path}:{line}: cannot tell the dataset format from the first record ({keys}); expected \"instruction\" + " +
            "\"output\" (alpaca), \"messages\" (chat), \"text\" or \"input_ids\" (pre-tokenised), or set the format explicitly.");
    }

    /// <summary>The first byte that is not whitespace or a byte order mark, or null for an empty file.</summary>
    private static byte? FirstByte(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> buffer = stackalloc byte[4096];
        var position = 0L;
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            for (var i = 0; i < read; i++, position++)
            {
                var b = buffer[i];
                if (position < 3 && b is 0xEF or 0xBB or 0xBF)
                    continue;
                if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
                    return b;
            }
        }

        return null;
    }
}
