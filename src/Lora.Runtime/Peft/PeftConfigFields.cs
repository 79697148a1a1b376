using System.Text.Json;
using System.Text.Json.Nodes;

namespace Lora.Peft;

/// <summary>
/// The fields of one <c>adapter_config.json</c> as a method reads them: typed getters that name the file and field in
/// every error, and that record which keys were understood, so that <see cref="PeftConfigFile"/> can warn about the
/// rest. A key whose behaviour is not implemented must be refused (<see cref="RequireDefault"/>), never ignored.
/// </summary>
public sealed class PeftConfigFields
{
    private readonly JsonObject _root;
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    internal PeftConfigFields(JsonObject root, string path)
    {
        _root = root;
        Path = path;
    }

    /// <summary>The file, for messages.</summary>
    public string Path { get; }

    private readonly List<(string Key, PeftConfigFields Fields)> _children = [];

    /// <summary>Keys no getter asked for (those of nested objects read by <see cref="Object"/> as <c>key.inner</c>).</summary>
    internal IEnumerable<string> Unread =>
        _root.Select(p => p.Key).Where(k => !_read.Contains(k))
            .Concat(_children.SelectMany(c => c.Fields.Unread.Select(k => c.Key + "." + k)));

    /// <summary>A nested object's fields (null when absent or not an object), read the same way.</summary>
    public PeftConfigFields? Object(string key)
    {
        if (Node(key) is not JsonObject o)
            return null;
        var child = new PeftConfigFields(o, $"{Path} ({key})");
        _children.Add((key, child));
        return child;
    }

    public int? Int(string key) => Value(key, n => n.GetValue<int>());

    public double? Double(string key) => Value(key, n => n.GetValue<double>());

    public bool? Bool(string key) => Value(key, n => n.GetValue<bool>());

    public string? String(string key) => Value(key, n => n.GetValue<string>());

    /// <summary>The raw node (null when absent or JSON null).</summary>
    public JsonNode? Node(string key)
    {
        _read.Add(key);
        return _root[key] is { } n && n.GetValueKind() != JsonValueKind.Null ? n : null;
    }

    /// <summary>A target-module field: a list (exact or <c>.endswith</c> names), or a string (a regex, or <c>all-linear</c>).</summary>
    public TargetModules? Targets(string key) => Node(key) switch
    {
        null => null,
        JsonArray a => TargetModules.FromNames(a.Select(n => Read(key, () => n!.GetValue<string>()))),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => TargetModules.FromPattern(v.GetValue<string>()),
        var other => throw Error(key, $"must be a list or a string, got {other.ToJsonString()}."),
    };

    /// <summary>A list of strings (a lone string is a one-element list).</summary>
    public IReadOnlyList<string>? Strings(string key) => Node(key) switch
    {
        null => null,
        JsonArray a => a.Select(n => Read(key, () => n!.GetValue<string>())).ToList(),
        JsonValue v => [Read(key, () => v.GetValue<string>())],
        var other => throw Error(key, $"must be a list of strings, got {other.ToJsonString()}."),
    };

    /// <summary>An int or a list of ints.</summary>
    public IReadOnlyList<int>? Ints(string key) => Node(key) switch
    {
        null => null,
        JsonArray a => a.Select(n => Read(key, () => n!.GetValue<int>())).ToList(),
        JsonValue v => [Read(key, () => v.GetValue<int>())],
        var other => throw Error(key, $"must be an int or a list of ints, got {other.ToJsonString()}."),
    };

    /// <summary>A JSON object as a dictionary (empty when absent).</summary>
    public Dictionary<string, T> Map<T>(string key, Func<JsonNode, T> read) =>
        Node(key) is JsonObject o
            ? o.ToDictionary(p => p.Key, p => Read(key, () => read(p.Value!)), StringComparer.Ordinal)
            : new Dictionary<string, T>(StringComparer.Ordinal);

    /// <summary>Keys that carry no behaviour for this method (bookkeeping, or options of disabled features).</summary>
    public void Ignore(params string[] keys)
    {
        foreach (var key in keys)
            _read.Add(key);
    }

    /// <summary>Keys whose default (absent, null, false, {} or []) is all this runtime implements: any other value is
    /// an error rather than a silently different adapter.</summary>
    public void RequireDefault(params string[] keys)
    {
        foreach (var key in keys)
        {
            _read.Add(key);
            var value = _root[key];
            var isDefault = value switch
            {
                null => true,
                JsonObject o => o.Count == 0,
                JsonArray a => a.Count == 0,
                JsonValue v => v.GetValueKind() is JsonValueKind.False or JsonValueKind.Null,
                _ => false,
            };
            if (!isDefault)
                throw Error(key, $"= {value!.ToJsonString()} is not supported (only its default is).");
        }
    }

    /// <summary>An error naming the file and the field.</summary>
    public LoraException Error(string key, string message) => new($"{Path}: field \"{key}\" {message}");

    private T? Value<T>(string key, Func<JsonNode, T> read)
        where T : struct
    {
        var node = Node(key);
        return node is null ? null : Read(key, () => read(node));
    }

    private string? Value(string key, Func<JsonNode, string> read)
    {
        var node = Node(key);
        return node is null ? null : Read(key, () => read(node));
    }

    private T Read<T>(string key, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw Error(key, $"has the wrong type ({e.Message}).");
        }
    }
}
