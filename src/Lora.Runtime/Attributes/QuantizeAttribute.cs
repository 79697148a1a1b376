using Lora.Quantization;
using static TorchSharp.torch;

namespace Lora;

/// <summary>
/// Declares that a model with an adapter plan loads quantized (QLoRA, or LLM.int8() for 8-bit bases): its generated
/// <c>FromPretrained</c> quantizes every linear layer but the output head and the plan's <c>ModulesToSave</c> as it
/// reads them (transformers' <c>BitsAndBytesConfig</c>; see docs/quantization.md). Checked at build time: an invalid
/// block size, double quantization of int8 weights or an unsupported compute dtype is a build error.
/// <code>
/// [Lora(R = 16, Alpha = 32, Targets = "all-linear")]
/// [Quantize(QuantizationType.Nf4, DoubleQuant = true, Compute = ScalarType.BFloat16)]
/// public partial class LlamaQLora : LlamaForCausalLM { }
/// </code>
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class QuantizeAttribute : Attribute
{
    /// <summary>The metadata name the generator looks the attribute up by.</summary>
    public const string MetadataName = "Lora.QuantizeAttribute";

    /// <param name="type">NF4 (QLoRA), FP4, or int8 (LLM.int8()).</param>
    public QuantizeAttribute(QuantizationType type) => Type = type;

    /// <summary>How the weights are stored.</summary>
    public QuantizationType Type { get; }

    /// <summary><c>bnb_4bit_use_double_quant</c>: quantize the 4-bit block scales too (4-bit types only).</summary>
    public bool DoubleQuant { get; set; }

    /// <summary>Elements per 4-bit block scale: 32, 64 (the default), 128, … 4096.</summary>
    public int Blocksize { get; set; } = 64;

    /// <summary><c>bnb_4bit_compute_dtype</c>: Float32 (bitsandbytes' default), BFloat16 or Float16.</summary>
    public ScalarType Compute { get; set; } = ScalarType.Float32;

    /// <summary><c>llm_int8_threshold</c> (int8 only): outlier columns above it go through a 16-bit matmul; 0 turns
    /// the decomposition off.</summary>
    public double Int8Threshold { get; set; } = 6.0;

    /// <summary>More modules to leave unquantized, <c>|</c>-separated (names or dotted paths); the output head and
    /// the plan's <c>ModulesToSave</c> always are.</summary>
    public string? SkipModules { get; set; }

    /// <summary>The runtime configuration this attribute declares.</summary>
    public QuantizationConfig ToConfig()
    {
        var config = new QuantizationConfig
        {
            Type = Type,
            DoubleQuant = DoubleQuant,
            Blocksize = Blocksize,
            ComputeDType = Compute,
            Int8Threshold = Int8Threshold,
        };
        return SkipModules is { Length: > 0 } skip
            ? config.Skipping(skip.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            : config;
    }
}
