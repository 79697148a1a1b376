namespace Lora.Gguf;

/// <summary>GGUF metadata value types (llama.cpp <c>gguf-py/gguf/constants.py</c>, <c>GGUFValueType</c>).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>The ggml tensor types this exporter writes (<c>constants.py</c>, <c>GGMLQuantizationType</c>).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
    BF16 = 30,
}

/// <summary><c>general.file_type</c> values (<c>constants.py</c>, <c>LlamaFileType</c>).</summary>
public enum GgufFileType : uint
{
    AllF32 = 0,
    MostlyF16 = 1,
    MostlyQ8_0 = 7,
    MostlyBF16 = 32,
}

/// <summary>llama.cpp vocabulary token types (<c>constants.py</c>, <c>TokenType</c>).</summary>
public enum GgufTokenType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}
