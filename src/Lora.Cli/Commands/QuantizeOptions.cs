using System.CommandLine;
using Lora.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Cli.Commands;

/// <summary>
/// The options that load a model quantized (QLoRA / LLM.int8()), shared by train, eval, generate and inspect:
/// <c>--quantize nf4|fp4|int8 [--double-quant] [--blocksize N] [--compute-dtype bf16|fp16|fp32] [--int8-threshold T]</c>.
/// A bitsandbytes pre-quantized model directory loads quantized without them. See docs/quantization.md.
/// </summary>
internal sealed class QuantizeOptions
{
    private readonly Option<string?> _type = new("--quantize") { Description = "Load the base quantized: nf4 (QLoRA), fp4 or int8 (LLM.int8()); the output head stays dense." };
    private readonly Option<bool> _doubleQuant = new("--double-quant") { Description = "4-bit: quantize the block scales too (QLoRA's double quantization, ~0.37 bits/param less)." };
    private readonly Option<int?> _blocksize = new("--blocksize") { Description = "4-bit: elements per block scale (32…4096, default 64)." };
    private readonly Option<string?> _compute = new("--compute-dtype") { Description = "4-bit: the matmul dtype, bf16, fp16 or fp32 (default: bf16 on CUDA, fp32 on CPU)." };
    private readonly Option<double?> _threshold = new("--int8-threshold") { Description = "int8: input columns with |x| ≥ this go through a 16-bit matmul (default 6; 0 turns it off)." };

    public IEnumerable<Option> All => [_type, _doubleQuant, _blocksize, _compute, _threshold];

    /// <summary>True when any quantization option was given.</summary>
    public bool Given(ParseResult parse) =>
        parse.GetValue(_type) is not null || parse.GetValue(_doubleQuant) || parse.GetValue(_blocksize) is not null
        || parse.GetValue(_compute) is not null || parse.GetValue(_threshold) is not null;

    /// <summary>The requested configuration (null without <c>--quantize</c>); checked before anything is loaded. The
    /// compute dtype defaults by <paramref name="deviceSpec"/>: bf16 on CUDA, fp32 on the CPU.</summary>
    public QuantizationConfig? Read(ParseResult parse, string deviceSpec)
    {
        var typeText = parse.GetValue(_type);
        if (typeText is null)
        {
            if (Given(parse))
                throw new LoraException("--double-quant, --blocksize, --compute-dtype and --int8-threshold need --quantize nf4|fp4|int8.");
            return null;
        }

        var type = QuantizationTypes.Parse(typeText) ?? throw new LoraException($"--quantize '{typeText}' is not one of nf4, fp4, int8.");
        if (type == QuantizationType.Int8 && (parse.GetValue(_doubleQuant) || parse.GetValue(_blocksize) is not null || parse.GetValue(_compute) is not null))
            throw new LoraException("--quantize int8 stores one fp32 scale per row and multiplies in int8: --double-quant, --blocksize and --compute-dtype are 4-bit options.");
        if (type != QuantizationType.Int8 && parse.GetValue(_threshold) is not null)
            throw new LoraException("--int8-threshold is an option of --quantize int8.");
        var config = new QuantizationConfig
        {
            Type = type,
            DoubleQuant = parse.GetValue(_doubleQuant),
            Blocksize = parse.GetValue(_blocksize) ?? 64,
            ComputeDType = parse.GetValue(_compute) is { } c ? ParseCompute(c, "--compute-dtype")
                : deviceSpec.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) ? ScalarType.BFloat16 : ScalarType.Float32,
            Int8Threshold = parse.GetValue(_threshold) ?? 6.0,
        };
        config.Validate();
        return config;
    }

    public static ScalarType ParseCompute(string text, string option) => text.ToLowerInvariant() switch
    {
        "fp32" or "float32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "fp16" or "float16" => ScalarType.Float16,
        _ => throw new LoraException($"{option} '{text}' is not one of bf16, fp16, fp32."),
    };

    /// <summary>One line describing how <paramref name="model"/> is stored, or null for a dense model:
    /// <c>quantized nf4 (double quant, …): 14 linear layers, 4.127 bits/param (stored), weights 1.2 MB (fp32 3.9 MB)</c>.</summary>
    public static string? Describe(Models.CausalLM model)
    {
        if (model.Quantization is not { } q)
            return null;
        var layers = ModelQuantizer.QuantizedLayers(model).ToList();
        var elements = layers.Sum(l => l.Base.InFeatures * l.Base.OutFeatures);
        var bits = layers.Sum(l => l.Base.BitsPerParameter * l.Base.InFeatures * l.Base.OutFeatures);
        var denseBytes = elements * (long)SizeOf(layers.Count > 0 ? layers[0].Base.DType : ScalarType.Float32);
        return $"quantized {q}: {layers.Count} linear layers, {(elements == 0 ? 0 : bits / elements).ToString("F3", System.Globalization.CultureInfo.InvariantCulture)} bits/param (stored tensors), " +
            $"{Mb(bits / 8)} for their weights ({Mb(denseBytes)} in {FourBitWeight.DTypeName(layers.Count > 0 ? layers[0].Base.DType : ScalarType.Float32)})";
    }

    private static int SizeOf(ScalarType t) => t == ScalarType.Float32 ? 4 : 2;

    private static string Mb(double bytes) => $"{(bytes / 1e6).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)} MB";
}
