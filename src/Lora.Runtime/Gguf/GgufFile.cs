using System.Text;

namespace Lora.Gguf;

/// <summary>A GGUF file's header, metadata and tensor table (gguf-py <c>gguf_reader.py</c>'s view), for checks and
/// <c>lora</c>'s own tests. Tensor shapes are given PyTorch-style (outermost first).</summary>
public sealed record GgufFile(uint Version, IReadOnlyDictionary<string, object> Metadata, IReadOnlyList<GgufTensorInfo> Tensors, long DataOffset)
{
    public static GgufFile Read(string path)
    {
        using var stream = File.OpenRead(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        if (r.ReadUInt32() != GgufWriter.Magic)
        {
            throw new LoraException($"{path}: not a GGUF file (bad magic)");
        }

        var version = r.ReadUInt32();
        var tensorCount = (long)r.ReadUInt64();
        var kvCount = (long)r.ReadUInt64();
        var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
        for (var i = 0; i < kvCount; i++)
        {
            var key = ReadString(r);
            metadata[key] = ReadValue(r, (GgufValueType)r.ReadUInt32());
        }

        var tensors = new List<GgufTensorInfo>();
        for (var i = 0; i < tensorCount; i++)
        {
            var name = ReadString(r);
            var dims = r.ReadUInt32();
            var ne = new long[dims];
            for (var d = 0; d < dims; d++)
            {
                ne[d] = (long)r.ReadUInt64();
            }

            var type = (GgmlType)r.ReadUInt32();
            var offset = (long)r.ReadUInt64();
            tensors.Add(new GgufTensorInfo(name, ne.Reverse().ToArray(), type, offset));
        }

        return new GgufFile(version, metadata, tensors, GgufWriter.Pad(stream.Position));
    }

    /// <summary>The raw bytes of a tensor.</summary>
    public byte[] ReadTensor(string path, GgufTensorInfo tensor)
    {
        using var stream = File.OpenRead(path);
        stream.Position = DataOffset + tensor.Offset;
        var bytes = new byte[GgmlQuant.ByteCount(tensor.Type, tensor.Shape.Aggregate(1L, (a, b) => a * b))];
        stream.ReadExactly(bytes);
        return bytes;
    }

    private static string ReadString(BinaryReader r) => Encoding.UTF8.GetString(r.ReadBytes(checked((int)r.ReadUInt64())));

    private static object ReadValue(BinaryReader r, GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => r.ReadByte(),
        GgufValueType.Int8 => r.ReadSByte(),
        GgufValueType.UInt16 => r.ReadUInt16(),
        GgufValueType.Int16 => r.ReadInt16(),
        GgufValueType.UInt32 => r.ReadUInt32(),
        GgufValueType.Int32 => r.ReadInt32(),
        GgufValueType.Float32 => r.ReadSingle(),
        GgufValueType.Bool => r.ReadByte() != 0,
        GgufValueType.String => ReadString(r),
        GgufValueType.UInt64 => r.ReadUInt64(),
        GgufValueType.Int64 => r.ReadInt64(),
        GgufValueType.Float64 => r.ReadDouble(),
        GgufValueType.Array => ReadArray(r),
        _ => throw new LoraException($"unknown GGUF value type {(uint)type}"),
    };

    private static object[] ReadArray(BinaryReader r)
    {
        var type = (GgufValueType)r.ReadUInt32();
        var n = (long)r.ReadUInt64();
        var items = new object[n];
        for (var i = 0; i < n; i++)
        {
            items[i] = ReadValue(r, type);
        }

        return items;
    }
}

public sealed record GgufTensorInfo(string Name, long[] Shape, GgmlType Type, long Offset);
