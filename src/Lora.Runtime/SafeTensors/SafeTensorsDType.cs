using TorchSharp;

namespace Lora.SafeTensors;

/// <summary>The element types of the safetensors format (the <c>dtype</c> strings of its header).</summary>
public enum SafeTensorsDType
{
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    BOOL,

    /// <summary>float8 e4m3fn; TorchSharp has no float8 type, so it is decoded to F32 on load.</summary>
    F8_E4M3,

    /// <summary>float8 e5m2; decoded to F32 on load.</summary>
    F8_E5M2,
}

/// <summary>Sizes and TorchSharp equivalents of <see cref="SafeTensorsDType"/>.</summary>
public static class SafeTensorsDTypes
{
    public static bool TryParse(string text, out SafeTensorsDType dtype) =>
        Enum.TryParse(text, ignoreCase: false, out dtype) && Enum.IsDefined(dtype) && !int.TryParse(text, out _);

    public static int SizeOf(SafeTensorsDType dtype) => dtype switch
    {
        SafeTensorsDType.F64 or SafeTensorsDType.I64 => 8,
        SafeTensorsDType.F32 or SafeTensorsDType.I32 => 4,
        SafeTensorsDType.F16 or SafeTensorsDType.BF16 or SafeTensorsDType.I16 => 2,
        _ => 1,
    };

    /// <summary>The TorchSharp type the raw bytes are read as (float8 types are decoded to Float32).</summary>
    public static torch.ScalarType ToScalarType(SafeTensorsDType dtype) => dtype switch
    {
        SafeTensorsDType.F64 => torch.ScalarType.Float64,
        SafeTensorsDType.F32 => torch.ScalarType.Float32,
        SafeTensorsDType.F16 => torch.ScalarType.Float16,
        SafeTensorsDType.BF16 => torch.ScalarType.BFloat16,
        SafeTensorsDType.I64 => torch.ScalarType.Int64,
        SafeTensorsDType.I32 => torch.ScalarType.Int32,
        SafeTensorsDType.I16 => torch.ScalarType.Int16,
        SafeTensorsDType.I8 => torch.ScalarType.Int8,
        SafeTensorsDType.U8 => torch.ScalarType.Byte,
        SafeTensorsDType.BOOL => torch.ScalarType.Bool,
        _ => torch.ScalarType.Float32,
    };

    /// <summary>The safetensors dtype a TorchSharp tensor is written as.</summary>
    public static SafeTensorsDType FromScalarType(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Float64 => SafeTensorsDType.F64,
        torch.ScalarType.Float32 => SafeTensorsDType.F32,
        torch.ScalarType.Float16 => SafeTensorsDType.F16,
        torch.ScalarType.BFloat16 => SafeTensorsDType.BF16,
        torch.ScalarType.Int64 => SafeTensorsDType.I64,
        torch.ScalarType.Int32 => SafeTensorsDType.I32,
        torch.ScalarType.Int16 => SafeTensorsDType.I16,
        torch.ScalarType.Int8 => SafeTensorsDType.I8,
        torch.ScalarType.Byte => SafeTensorsDType.U8,
        torch.ScalarType.Bool => SafeTensorsDType.BOOL,
        _ => throw new NotSupportedException($"safetensors has no dtype for {type}."),
    };
}
