namespace Lora.SafeTensors;

/// <summary>One tensor of a safetensors header: its dtype, shape and byte range inside the data section.</summary>
public sealed record TensorEntry(string Name, SafeTensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public long ByteLength => End - Begin;
}
