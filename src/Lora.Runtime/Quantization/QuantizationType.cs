namespace Lora.Quantization;

/// <summary>
/// How a frozen base weight is stored: bitsandbytes' 4-bit data types (<c>bnb_4bit_quant_type</c>) or LLM.int8()
/// (<c>load_in_8bit</c>).
/// </summary>
public enum QuantizationType
{
    /// <summary>4-bit NormalFloat (QLoRA): 16 quantiles of N(0, 1), blockwise absmax scaling.</summary>
    Nf4,

    /// <summary>4-bit float (1 sign, 2 exponent, 1 mantissa bit), blockwise absmax scaling; bitsandbytes' default
    /// 4-bit type.</summary>
    Fp4,

    /// <summary>LLM.int8(): row-wise absmax int8 weights, with 16-bit outlier columns in the matmul.</summary>
    Int8,
}

/// <summary>Names of <see cref="QuantizationType"/> as bitsandbytes, transformers and the CLI spell them.</summary>
public static class QuantizationTypes
{
    /// <summary><c>nf4</c>, <c>fp4</c>, <c>int8</c>.</summary>
    public static string Name(this QuantizationType type) => type switch
    {
        QuantizationType.Nf4 => "nf4",
        QuantizationType.Fp4 => "fp4",
        _ => "int8",
    };

    /// <summary>True for the 4-bit types.</summary>
    public static bool IsFourBit(this QuantizationType type) => type != QuantizationType.Int8;

    /// <summary>Parses <c>nf4</c>, <c>fp4</c> or <c>int8</c> (case-insensitive); null when it is none of them.</summary>
    public static QuantizationType? Parse(string text) => text.ToLowerInvariant() switch
    {
        "nf4" => QuantizationType.Nf4,
        "fp4" => QuantizationType.Fp4,
        "int8" or "8bit" => QuantizationType.Int8,
        _ => null,
    };
}
