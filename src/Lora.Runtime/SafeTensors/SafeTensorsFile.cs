using System.IO.MemoryMappedFiles;
using TorchSharp;

namespace Lora.SafeTensors;

/// <summary>
/// One safetensors file, memory-mapped: opening reads only the header; <see cref="Load"/> copies one tensor's bytes
/// from the mapping into a new tensor, so a checkpoint is materialised tensor by tensor (peak memory ≈ the tensors
/// kept, not the file).
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    // TorchSharp exposes tensor memory as Span<byte>, limited to int.MaxValue bytes: copy larger tensors in chunks.
    private const long ChunkBytes = 1L << 30;

    private readonly MemoryMappedFile? _mapping;
    private readonly MemoryMappedViewAccessor? _view;

    private SafeTensorsFile(string path, SafeTensorsHeader header, MemoryMappedFile? mapping, MemoryMappedViewAccessor? view)
    {
        Path = path;
        Header = header;
        _mapping = mapping;
        _view = view;
    }

    public string Path { get; }

    public SafeTensorsHeader Header { get; }

    public IReadOnlyDictionary<string, TensorEntry> Tensors => Header.Tensors;

    public IReadOnlyDictionary<string, string> Metadata => Header.Metadata;

    /// <exception cref="SafeTensorsFormatException">The file is missing or malformed.</exception>
    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path))
            throw new SafeTensorsFormatException(path, "file not found.");

        SafeTensorsHeader header;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            header = SafeTensorsHeader.Read(stream, path);

        var dataLength = new FileInfo(path).Length - header.DataOffset;
        if (dataLength == 0)
            return new SafeTensorsFile(path, header, null, null);

        var mapping = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, capacity: 0, MemoryMappedFileAccess.Read);
        var view = mapping.CreateViewAccessor(header.DataOffset, dataLength, MemoryMappedFileAccess.Read);
        return new SafeTensorsFile(path, header, mapping, view);
    }

    /// <summary>Reads tensor <paramref name="name"/> (float8 is decoded to Float32), then converts it to
    /// <paramref name="dtype"/> and moves it to <paramref name="device"/> when given.</summary>
    public torch.Tensor Load(string name, torch.ScalarType? dtype = null, torch.Device? device = null)
    {
        if (!Header.Tensors.TryGetValue(name, out var entry))
            throw new LoraException($"{Path}: no tensor named '{name}'.");

        using var scope = torch.NewDisposeScope();
        var tensor = ReadRaw(entry);
        if (dtype is { } t && tensor.dtype != t)
            tensor = tensor.to(t);
        if (device is not null && device.type != DeviceType.CPU)
            tensor = tensor.to(device);
        return tensor.MoveToOuterDisposeScope();
    }

    private unsafe torch.Tensor ReadRaw(TensorEntry entry)
    {
        var isFloat8 = entry.DType is SafeTensorsDType.F8_E4M3 or SafeTensorsDType.F8_E5M2;
        var storageType = isFloat8 ? torch.ScalarType.Byte : SafeTensorsDTypes.ToScalarType(entry.DType);
        var tensor = torch.empty(entry.Shape, storageType);
        if (entry.ByteLength > 0)
        {
            byte* basePtr = null;
            _view!.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
            try
            {
                basePtr += _view.PointerOffset + entry.Begin;
                var flat = tensor.view(-1);
                var elementSize = SafeTensorsDTypes.SizeOf(entry.DType);
                var elementsPerChunk = ChunkBytes / elementSize;
                for (long first = 0; first < entry.ElementCount; first += elementsPerChunk)
                {
                    var count = Math.Min(elementsPerChunk, entry.ElementCount - first);
                    using var chunk = flat.narrow(0, first, count);
                    new ReadOnlySpan<byte>(basePtr + first * elementSize, checked((int)(count * elementSize))).CopyTo(chunk.bytes);
                }
            }
            finally
            {
                _view.SafeMemoryMappedViewHandle.ReleasePointer();
            }
        }

        return isFloat8 ? DecodeFloat8(tensor, entry.DType == SafeTensorsDType.F8_E4M3 ? Float8.E4M3 : Float8.E5M2) : tensor;
    }

    private static torch.Tensor DecodeFloat8(torch.Tensor codes, float[] table)
    {
        using var lookup = torch.tensor(table);
        return lookup.index_select(0, codes.to(torch.ScalarType.Int64).view(-1)).view(codes.shape);
    }

    public void Dispose()
    {
        _view?.Dispose();
        _mapping?.Dispose();
    }
}
