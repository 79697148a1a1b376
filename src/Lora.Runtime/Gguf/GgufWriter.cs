using System.Buffers.Binary;
using System.Text;

namespace Lora.Gguf;

/// <summary>
/// Writes a GGUF v3 file as llama.cpp's <c>gguf-py/gguf/gguf_writer.py</c> does (<c>write_header_to_file</c>,
/// <c>write_kv_data_to_file</c>, <c>write_ti_data_to_file</c>, <c>write_tensors_to_file</c>): magic "GGUF",
/// version 3, tensor count and metadata count (u64), the metadata (key string, u32 type, value), the tensor infos
/// (name, n_dims, dims innermost first — PyTorch's shape reversed —, ggml type, offset into the data section),
/// padding to <c>general.alignment</c> (32), then each tensor's bytes padded to 32. Little-endian throughout.
/// Metadata keeps insertion order. Written through <see cref="AtomicFile"/>.
/// </summary>
public sealed class GgufWriter
{
    public const uint Magic = 0x46554747; // "GGUF"
    public const uint Version = 3;
    public const int Alignment = 32;

    private readonly List<(string Key, GgufValueType Type, object Value, GgufValueType? ElementType)> _metadata = [];
    private readonly List<PendingTensor> _tensors = [];

    private sealed record PendingTensor(string Name, long[] Shape, GgmlType Type, long Bytes, Action<Stream> Write);

    public void Add(string key, string value) => Set(key, GgufValueType.String, value);

    public void Add(string key, uint value) => Set(key, GgufValueType.UInt32, value);

    public void Add(string key, int value) => Set(key, GgufValueType.Int32, value);

    public void Add(string key, float value) => Set(key, GgufValueType.Float32, value);

    public void Add(string key, bool value) => Set(key, GgufValueType.Bool, value);

    public void AddArray(string key, IReadOnlyList<string> values) => Set(key, GgufValueType.Array, values, GgufValueType.String);

    public void AddArray(string key, IReadOnlyList<int> values) => Set(key, GgufValueType.Array, values, GgufValueType.Int32);

    public void AddArray(string key, IReadOnlyList<float> values) => Set(key, GgufValueType.Array, values, GgufValueType.Float32);

    private void Set(string key, GgufValueType type, object value, GgufValueType? elementType = null)
    {
        _metadata.RemoveAll(m => m.Key == key);
        _metadata.Add((key, type, value, elementType));
    }

    /// <summary>Adds a tensor. <paramref name="shape"/> is PyTorch's (outermost first); <paramref name="write"/>
    /// writes exactly <paramref name="bytes"/> bytes when the file is written.</summary>
    public void AddTensor(string name, long[] shape, GgmlType type, long bytes, Action<Stream> write)
    {
        if (_tensors.Any(t => t.Name == name))
        {
            throw new ArgumentException($"duplicate tensor name '{name}'", nameof(name));
        }

        _tensors.Add(new PendingTensor(name, shape, type, bytes, write));
    }

    public IReadOnlyList<string> TensorNames => _tensors.Select(t => t.Name).ToList();

    public void Write(string path) => AtomicFile.Write(path, WriteTo);

    public void WriteTo(Stream stream)
    {
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        w.Write(Version);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, type, value, elementType) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)type);
            WriteValue(w, type, value, elementType);
        }

        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Shape.Length);
            for (var i = t.Shape.Length - 1; i >= 0; i--)
            {
                w.Write((ulong)t.Shape[i]);
            }

            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset += Pad(t.Bytes);
        }

        w.Flush();
        PadStream(stream, stream.Position);
        foreach (var t in _tensors)
        {
            var start = stream.Position;
            t.Write(stream);
            var written = stream.Position - start;
            if (written != t.Bytes)
            {
                throw new InvalidOperationException($"tensor '{t.Name}': wrote {written} bytes, declared {t.Bytes}");
            }

            PadStream(stream, written);
        }
    }

    public static long Pad(long n) => (n + Alignment - 1) / Alignment * Alignment;

    private static void PadStream(Stream stream, long n)
    {
        var pad = Pad(n) - n;
        if (pad > 0)
        {
            stream.Write(new byte[pad]);
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValueType type, object value, GgufValueType? elementType)
    {
        switch (type)
        {
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.Array:
                w.Write((uint)elementType!.Value);
                switch (value)
                {
                    case IReadOnlyList<string> strings:
                        w.Write((ulong)strings.Count);
                        foreach (var s in strings)
                        {
                            WriteString(w, s);
                        }

                        break;
                    case IReadOnlyList<int> ints:
                        w.Write((ulong)ints.Count);
                        foreach (var i in ints)
                        {
                            w.Write(i);
                        }

                        break;
                    case IReadOnlyList<float> floats:
                        w.Write((ulong)floats.Count);
                        foreach (var f in floats)
                        {
                            w.Write(f);
                        }

                        break;
                }

                break;
            default:
                throw new NotSupportedException(type.ToString());
        }
    }
}
