using System.Text.Json;
using TorchSharp;

namespace Lora.SafeTensors;

/// <summary>
/// The weights of a Hugging Face checkpoint: a single <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> (<c>{"metadata": {...}, "weight_map": {name: shard file}}</c>). Only headers
/// are read when it opens; tensors are read one by one from memory-mapped shards.
/// </summary>
public sealed class SafeTensorsCheckpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, SafeTensorsFile> _fileOf;
    private readonly List<SafeTensorsFile> _files;

    private SafeTensorsCheckpoint(string source, List<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> fileOf)
    {
        Source = source;
        _files = files;
        _fileOf = fileOf;
    }

    /// <summary>The file or index the checkpoint was opened from.</summary>
    public string Source { get; }

    /// <summary>Every tensor name, ordinal order.</summary>
    public IReadOnlyList<string> Keys => _fileOf.Keys.Order(StringComparer.Ordinal).ToList();

    public bool Contains(string key) => _fileOf.ContainsKey(key);

    /// <summary>The header entry of <paramref name="key"/> (dtype, shape) without reading data.</summary>
    public TensorEntry Entry(string key) =>
        _fileOf.TryGetValue(key, out var file) ? file.Tensors[key] : throw new LoraException($"{Source}: no tensor named '{key}'.");

    /// <summary>Total bytes of tensor data.</summary>
    public long TotalBytes => _files.Sum(f => f.Tensors.Values.Sum(t => t.ByteLength));

    /// <summary>Opens a directory (<c>model.safetensors</c>, else the sharded index), an index file, or one
    /// <c>.safetensors</c> file.</summary>
    /// <exception cref="LoraException">Nothing to open, or a malformed index or shard (the message names it).</exception>
    public static SafeTensorsCheckpoint Open(string path)
    {
        if (Directory.Exists(path))
        {
            var single = System.IO.Path.Combine(path, SingleFileName);
            var index = System.IO.Path.Combine(path, IndexFileName);
            if (File.Exists(single))
                return OpenSingle(single);
            if (File.Exists(index))
                return OpenIndex(index);
            throw new LoraException($"{path}: no {SingleFileName} or {IndexFileName} in this directory.");
        }

        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            return OpenIndex(path);
        return OpenSingle(path);
    }

    private static SafeTensorsCheckpoint OpenSingle(string file)
    {
        var st = SafeTensorsFile.Open(file);
        return new SafeTensorsCheckpoint(file, [st], st.Tensors.Keys.ToDictionary(k => k, _ => st, StringComparer.Ordinal));
    }

    private static SafeTensorsCheckpoint OpenIndex(string indexPath)
    {
        if (!File.Exists(indexPath))
            throw new SafeTensorsFormatException(indexPath, "file not found.");
        Dictionary<string, string> weightMap;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new SafeTensorsFormatException(indexPath, "missing object field 'weight_map'.");
            weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var item in map.EnumerateObject())
            {
                if (item.Value.ValueKind != JsonValueKind.String)
                    throw new SafeTensorsFormatException(indexPath, $"weight_map.{item.Name} is not a file name.");
                weightMap[item.Name] = item.Value.GetString()!;
            }
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException(indexPath, $"not valid JSON (line {e.LineNumber + 1}: {e.Message})", e);
        }

        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var files = new List<SafeTensorsFile>();
        try
        {
            var byName = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (var shard in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                if (shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                    throw new SafeTensorsFormatException(indexPath, $"shard name '{shard}' must be a file name in the same directory.");
                var opened = SafeTensorsFile.Open(System.IO.Path.Combine(dir, shard));
                files.Add(opened);
                byName[shard] = opened;
            }

            var fileOf = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (var (key, shard) in weightMap)
            {
                var file = byName[shard];
                if (!file.Tensors.ContainsKey(key))
                    throw new SafeTensorsFormatException(indexPath, $"weight_map says '{key}' is in {shard}, but that shard has no such tensor.");
                fileOf[key] = file;
            }

            return new SafeTensorsCheckpoint(indexPath, files, fileOf);
        }
        catch
        {
            files.ForEach(f => f.Dispose());
            throw;
        }
    }

    /// <summary>Reads one tensor; see <see cref="SafeTensorsFile.Load"/>.</summary>
    public torch.Tensor Load(string key, torch.ScalarType? dtype = null, torch.Device? device = null) =>
        _fileOf.TryGetValue(key, out var file)
            ? file.Load(key, dtype, device)
            : throw new LoraException($"{Source}: no tensor named '{key}'.");

    public void Dispose() => _files.ForEach(f => f.Dispose());
}
