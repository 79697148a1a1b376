using System.Globalization;
using System.Text.Json;

namespace Lora.Models;

/// <summary>
/// Typed access to the fields of one JSON object of a <c>config.json</c>; every failure is a
/// <see cref="LoraException"/> naming the file and the (dotted) field.
/// </summary>
internal sealed class ConfigJson
{
    private readonly JsonElement _object;
    private readonly string _prefix;

    private ConfigJson(string path, JsonElement obj, string prefix)
    {
        Path = path;
        _object = obj;
        _prefix = prefix;
    }

    /// <summary>The file, for messages.</summary>
    public string Path { get; }

    /// <summary>Parses <paramref name="path"/>; malformed JSON is reported with its line number.</summary>
    public static ConfigJson Parse(string path)
    {
        if (!File.Exists(path))
            throw new LoraException($"{path}: file not found (a Hugging Face model directory has a config.json next to its weights).");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new LoraException($"{path}: expected a JSON object, got {doc.RootElement.ValueKind}.");
            return new ConfigJson(path, doc.RootElement.Clone(), "");
        }
        catch (JsonException e)
        {
            var line = e.LineNumber is { } n ? $"line {n + 1}: " : "";
            throw new LoraException($"{path}: not valid JSON ({line}{e.Message})", e);
        }
    }

    public bool Has(string name) => _object.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public LoraException Error(string name, string problem) => new($"{Path}: field '{_prefix}{name}' {problem}");

    public string RequiredString(string name) => OptionalString(name) ?? throw Error(name, "is missing.");

    public string? OptionalString(string name)
    {
        if (!TryGet(name, out var v))
            return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Error(name, $"must be a string, got {v.GetRawText()}.");
    }

    public int RequiredInt(string name) => OptionalInt(name) ?? throw Error(name, "is missing.");

    public int? OptionalInt(string name)
    {
        if (!TryGet(name, out var v))
            return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i))
            return i;
        // 4096.0 is an integer too (some converters write floats).
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue)
            return (int)d;
        throw Error(name, $"must be an integer, got {v.GetRawText()}.");
    }

    /// <summary>A positive integer (sizes, counts).</summary>
    public int RequiredPositive(string name)
    {
        var value = RequiredInt(name);
        return value > 0 ? value : throw Error(name, $"must be positive, got {value}.");
    }

    public int? OptionalPositive(string name)
    {
        var value = OptionalInt(name);
        return value is null or > 0 ? value : throw Error(name, $"must be positive, got {value}.");
    }

    public double RequiredDouble(string name) => OptionalDouble(name) ?? throw Error(name, "is missing.");

    public double? OptionalDouble(string name)
    {
        if (!TryGet(name, out var v))
            return null;
        return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Error(name, $"must be a number, got {v.GetRawText()}.");
    }

    public bool? OptionalBool(string name)
    {
        if (!TryGet(name, out var v))
            return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(name, $"must be true or false, got {v.GetRawText()}."),
        };
    }

    /// <summary>An int, a list of ints (<c>eos_token_id</c>), or nothing.</summary>
    public IReadOnlyList<int> IntOrList(string name)
    {
        if (!TryGet(name, out var v))
            return [];
        if (v.ValueKind == JsonValueKind.Array)
        {
            return v.EnumerateArray()
                .Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out var i) ? i : throw Error(name, $"must hold integers, got {x.GetRawText()}."))
                .ToList();
        }

        return [OptionalInt(name)!.Value];
    }

    /// <summary>A list of strings, or null when absent/null.</summary>
    public IReadOnlyList<string>? OptionalStringList(string name)
    {
        if (!TryGet(name, out var v))
            return null;
        if (v.ValueKind != JsonValueKind.Array)
            throw Error(name, $"must be a list of strings, got {v.GetRawText()}.");
        return v.EnumerateArray()
            .Select(x => x.ValueKind == JsonValueKind.String ? x.GetString()! : throw Error(name, $"must hold strings, got {x.GetRawText()}."))
            .ToList();
    }

    /// <summary>A nested object (<c>rope_parameters</c>), or null when absent/null.</summary>
    public ConfigJson? OptionalObject(string name)
    {
        if (!TryGet(name, out var v))
            return null;
        return v.ValueKind == JsonValueKind.Object
            ? new ConfigJson(Path, v, _prefix + name + ".")
            : throw Error(name, $"must be an object, got {v.GetRawText()}.");
    }

    public IEnumerable<string> Names => _object.EnumerateObject().Select(p => p.Name);

    private bool TryGet(string name, out JsonElement value) =>
        _object.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    /// <summary>Invariant text of a number for messages.</summary>
    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
