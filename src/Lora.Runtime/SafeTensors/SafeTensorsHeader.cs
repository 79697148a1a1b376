using System.Buffers.Binary;
using System.Text.Json;

namespace Lora.SafeTensors;

/// <summary>
/// The parsed and validated header of a safetensors file:
/// <c>[u64 little-endian N][N bytes of JSON][data section]</c>. The JSON maps each tensor name to
/// <c>{"dtype", "shape", "data_offsets": [begin, end]}</c> (offsets relative to the data section) and may hold
/// <c>"__metadata__"</c>, a string-to-string map.
/// </summary>
public sealed class SafeTensorsHeader
{
    /// <summary>The reference implementation's cap: larger headers are refused before anything is allocated.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private SafeTensorsHeader(IReadOnlyDictionary<string, TensorEntry> tensors, IReadOnlyDictionary<string, string> metadata, long dataOffset)
    {
        Tensors = tensors;
        Metadata = metadata;
        DataOffset = dataOffset;
    }

    /// <summary>Tensors by name, in header order.</summary>
    public IReadOnlyDictionary<string, TensorEntry> Tensors { get; }

    /// <summary>The <c>__metadata__</c> map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>File offset of the data section (8 + header length).</summary>
    public long DataOffset { get; }

    /// <summary>Reads and validates the header of <paramref name="stream"/>, whose total length is known.</summary>
    /// <exception cref="SafeTensorsFormatException">Truncated file, absurd header length, bad JSON, unknown dtype,
    /// offsets outside the data section, overlapping tensors, or a byte length that does not match shape × dtype.</exception>
    public static SafeTensorsHeader Read(Stream stream, string path)
    {
        var fileLength = stream.Length;
        if (fileLength < 8)
            throw new SafeTensorsFormatException(path, $"file is {fileLength} bytes, too short for the 8-byte header length; truncated?");

        Span<byte> lengthBytes = stackalloc byte[8];
        stream.Position = 0;
        stream.ReadExactly(lengthBytes);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw new SafeTensorsFormatException(path, $"header length {headerLength} exceeds the file size {fileLength}; truncated or not a safetensors file?");
        if (headerLength > MaxHeaderBytes)
            throw new SafeTensorsFormatException(path, $"header length {headerLength} is larger than the {MaxHeaderBytes}-byte limit.");

        var json = new byte[headerLength];
        stream.ReadExactly(json);
        var dataOffset = 8 + (long)headerLength;
        return Parse(json, path, dataOffset, fileLength - dataOffset);
    }

    private static SafeTensorsHeader Parse(byte[] json, string path, long dataOffset, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException(path, $"header is not valid JSON ({e.Message})", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafeTensorsFormatException(path, "header JSON is not an object.");

            var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                    ReadMetadata(property.Value, path, metadata);
                else if (!tensors.TryAdd(property.Name, ReadEntry(property.Name, property.Value, path, dataLength)))
                    throw new SafeTensorsFormatException(path, $"tensor '{property.Name}' appears twice in the header.");
            }

            CheckNoOverlap(tensors.Values, path);
            return new SafeTensorsHeader(tensors, metadata, dataOffset);
        }
    }

    private static void ReadMetadata(JsonElement value, string path, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException(path, "__metadata__ is not an object of strings.");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new SafeTensorsFormatException(path, $"__metadata__.{item.Name} is not a string.");
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static TensorEntry ReadEntry(string name, JsonElement value, string path, long dataLength)
    {
        string Where(string field) => $"tensor '{name}': {field}";
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException(path, Where("entry is not an object."));

        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new SafeTensorsFormatException(path, Where("missing string field 'dtype'."));
        var dtypeText = dtypeElement.GetString()!;
        if (!SafeTensorsDTypes.TryParse(dtypeText, out var dtype))
            throw new SafeTensorsFormatException(path, Where($"unknown dtype '{dtypeText}' (known: {string.Join(", ", Enum.GetNames<SafeTensorsDType>())})."));

        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new SafeTensorsFormatException(path, Where("missing array field 'shape'."));
        var shape = new long[shapeElement.GetArrayLength()];
        var i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var d) || d < 0)
                throw new SafeTensorsFormatException(path, Where($"shape[{i}] is not a non-negative integer."));
            shape[i++] = d;
        }

        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw new SafeTensorsFormatException(path, Where("missing field 'data_offsets' [begin, end]."));
        if (!offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new SafeTensorsFormatException(path, Where("data_offsets must be integers with 0 <= begin <= end."));
        if (end > dataLength)
            throw new SafeTensorsFormatException(path, Where($"data_offsets [{begin}, {end}] run past the {dataLength}-byte data section; truncated?"));

        long expected = SafeTensorsDTypes.SizeOf(dtype);
        try
        {
            foreach (var d in shape)
                expected = checked(expected * d);
        }
        catch (OverflowException)
        {
            throw new SafeTensorsFormatException(path, Where($"shape [{string.Join(", ", shape)}] is too large."));
        }

        if (expected != end - begin)
            throw new SafeTensorsFormatException(path, Where($"shape [{string.Join(", ", shape)}] × {dtypeText} needs {expected} bytes but data_offsets span {end - begin}."));
        return new TensorEntry(name, dtype, shape, begin, end);
    }

    private static void CheckNoOverlap(IEnumerable<TensorEntry> entries, string path)
    {
        TensorEntry? previous = null;
        foreach (var entry in entries.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin))
        {
            if (previous is not null && entry.Begin < previous.End)
                throw new SafeTensorsFormatException(path, $"tensors '{previous.Name}' and '{entry.Name}' overlap in the data section.");
            previous = entry;
        }
    }
}
