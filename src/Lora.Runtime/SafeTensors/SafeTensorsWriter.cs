using System.Text;
using System.Text.Json;
using TorchSharp;

namespace Lora.SafeTensors;

/// <summary>
/// Writes safetensors files (and sharded checkpoints with their index) the way Hugging Face does: header padded to
/// 8 bytes, <c>__metadata__ {"format": "pt"}</c>, contiguous little-endian data. Every file is written to a temporary
/// name and renamed into place, so an interrupted write never leaves a torn file.
/// </summary>
public static class SafeTensorsWriter
{
    public static readonly IReadOnlyDictionary<string, string> PyTorchMetadata = new Dictionary<string, string> { ["format"] = "pt" };

    private const long ChunkBytes = 1L << 30;

    /// <summary>Writes <paramref name="tensors"/> (any device/dtype; copied to CPU as needed) to <paramref name="path"/>.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        var duplicate = list.GroupBy(t => t.Key).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"tensor '{duplicate.Key}' given twice.", nameof(tensors));

        var header = BuildHeader(list, metadata ?? PyTorchMetadata);
        AtomicFile.Write(path, stream =>
        {
            stream.Write(BitConverter.IsLittleEndian ? BitConverter.GetBytes((ulong)header.Length) : throw new PlatformNotSupportedException());
            stream.Write(header);
            foreach (var (_, tensor) in list)
                WriteData(stream, tensor);
        });
    }

    /// <summary>
    /// Writes a checkpoint into <paramref name="directory"/>: one <c>{baseName}.safetensors</c> when it fits in
    /// <paramref name="maxShardBytes"/>, else <c>{baseName}-00001-of-0000N.safetensors</c> shards plus
    /// <c>{baseName}.safetensors.index.json</c> (HF's <c>save_pretrained</c> layout). Returns the files written.
    /// </summary>
    public static IReadOnlyList<string> WriteCheckpoint(string directory, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, long maxShardBytes = 5L << 30, string baseName = "model")
    {
        Directory.CreateDirectory(directory);
        var list = tensors.ToList();
        var shards = new List<List<KeyValuePair<string, torch.Tensor>>> { new() };
        long current = 0;
        foreach (var t in list)
        {
            var bytes = t.Value.numel() * t.Value.ElementSize;
            if (current > 0 && current + bytes > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }

            shards[^1].Add(t);
            current += bytes;
        }

        if (shards.Count == 1)
        {
            var single = Path.Combine(directory, baseName + ".safetensors");
            Write(single, shards[0]);
            return [single];
        }

        var written = new List<string>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < shards.Count; i++)
        {
            var name = $"{baseName}-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            Write(Path.Combine(directory, name), shards[i]);
            written.Add(Path.Combine(directory, name));
            foreach (var t in shards[i])
                weightMap[t.Key] = name;
        }

        var index = new
        {
            metadata = new { total_size = list.Sum(t => t.Value.numel() * t.Value.ElementSize) },
            weight_map = weightMap,
        };
        var indexPath = Path.Combine(directory, baseName + ".safetensors.index.json");
        AtomicFile.WriteAllText(indexPath, JsonSerializer.Serialize(index, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(indexPath);
        return written;
    }

    private static byte[] BuildHeader(List<KeyValuePair<string, torch.Tensor>> list, IReadOnlyDictionary<string, string> metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            foreach (var (k, v) in metadata.OrderBy(m => m.Key, StringComparer.Ordinal))
                json.WriteString(k, v);
            json.WriteEndObject();
            long offset = 0;
            foreach (var (name, tensor) in list)
            {
                var bytes = tensor.numel() * tensor.ElementSize;
                json.WriteStartObject(name);
                json.WriteString("dtype", SafeTensorsDTypes.FromScalarType(tensor.dtype).ToString());
                json.WriteStartArray("shape");
                foreach (var d in tensor.shape)
                    json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }

            json.WriteEndObject();
        }

        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        var length = buffer.Length;
        var padded = (length + 7) / 8 * 8;
        for (var i = length; i < padded; i++)
            buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static void WriteData(Stream stream, torch.Tensor tensor)
    {
        using var scope = torch.NewDisposeScope();
        var flat = tensor.detach().to(torch.CPU).contiguous().view(-1);
        var elementSize = flat.ElementSize;
        var perChunk = ChunkBytes / elementSize;
        for (long first = 0; first < flat.numel(); first += perChunk)
        {
            var count = Math.Min(perChunk, flat.numel() - first);
            stream.Write(flat.narrow(0, first, count).bytes);
        }
    }
}
