using System.Text.Json.Nodes;
using Lora.Models;
using static TorchSharp.torch;

namespace Lora.Quantization;

/// <summary>
/// How a model's linear layers are quantized when loaded: transformers' <c>BitsAndBytesConfig</c>
/// (<c>transformers/utils/quantization_config.py</c>) with bitsandbytes' <c>Linear4bit</c> block size. Written into
/// <c>config.json</c> as <c>quantization_config</c> (<see cref="ToJson"/>) and read back from pre-quantized
/// checkpoints (<see cref="FromModelDirectory"/>), so <c>*-bnb-4bit</c> Hub checkpoints and ours load in both.
/// <para>Defaults are bitsandbytes'/transformers' (<c>fp4</c>, no double quantization, fp32 compute); QLoRA is
/// <see cref="QLoRA"/>: NF4 + double quantization + bf16 compute.</para>
/// </summary>
public sealed record QuantizationConfig
{
    /// <summary>The output projection, which transformers never quantizes (<c>get_keys_to_not_convert</c>).</summary>
    public const string OutputHeadName = "lm_head";

    /// <summary><c>bnb_4bit_quant_type</c> (<c>nf4</c>/<c>fp4</c>), or <see cref="QuantizationType.Int8"/> for
    /// <c>load_in_8bit</c>.</summary>
    public QuantizationType Type { get; init; } = QuantizationType.Fp4;

    /// <summary><c>bnb_4bit_use_double_quant</c>: quantize the 4-bit block scales too (8-bit, blocks of 256).</summary>
    public bool DoubleQuant { get; init; }

    /// <summary><c>Linear4bit(blocksize=…)</c>: elements per 4-bit block scale (32…4096, powers of two; 64 in
    /// transformers). A saved weight records its own in its <c>quant_state</c>.</summary>
    public int Blocksize { get; init; } = 64;

    /// <summary><c>bnb_4bit_compute_dtype</c>: the dtype 4-bit layers dequantize to and multiply in.</summary>
    public ScalarType ComputeDType { get; init; } = ScalarType.Float32;

    /// <summary><c>llm_int8_threshold</c>: int8 input columns with any |x| ≥ this go through a 16-bit matmul (0: off).</summary>
    public double Int8Threshold { get; init; } = 6.0;

    /// <summary><c>llm_int8_skip_modules</c>: modules left unquantized (names or dotted paths, matched as
    /// transformers does). Null means transformers' default, the output head; a list replaces that default, so it
    /// should hold <c>lm_head</c> too.</summary>
    public IReadOnlyList<string>? SkipModules { get; init; }

    /// <summary>QLoRA's recipe (<c>qlora.py</c>, PEFT-COMPAT A 2.7): NF4, double quantization, bf16 compute.</summary>
    public static QuantizationConfig QLoRA { get; } = new() { Type = QuantizationType.Nf4, DoubleQuant = true, ComputeDType = ScalarType.BFloat16 };

    /// <summary>LLM.int8() with the default outlier threshold 6.0.</summary>
    public static QuantizationConfig Int8 { get; } = new() { Type = QuantizationType.Int8 };

    /// <summary>Throws a <see cref="LoraException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Type.IsFourBit())
            Blockwise.CheckFourBitBlocksize(Blocksize);
        if (Type == QuantizationType.Int8 && DoubleQuant)
            throw new LoraException("double quantization applies to the 4-bit scales (nf4, fp4); int8 weights have one fp32 scale per row.");
        if (!CausalLM.SupportedDTypes.Contains(ComputeDType))
            throw new LoraException($"compute dtype {ComputeDType} is not one of {string.Join(", ", CausalLM.SupportedDTypes)}.");
        if (Int8Threshold < 0 || double.IsNaN(Int8Threshold))
            throw new LoraException($"the int8 outlier threshold must be ≥ 0, got {Int8Threshold}.");
    }

    /// <summary>
    /// True when the linear layer at <paramref name="path"/> is quantized: every linear layer but the output head and
    /// the <see cref="SkipModules"/>. A skip entry matches as in transformers' <c>replace_with_bnb_linear</c>: the
    /// leaf name, the whole path, a path prefix (<c>model.layers.0</c>) or a path suffix (<c>mlp.down_proj</c>).
    /// </summary>
    public bool Quantizes(string path)
    {
        var skip = SkipModules ?? [OutputHeadName];
        var leaf = path[(path.LastIndexOf('.') + 1)..];
        return !skip.Any(key => key == leaf || key == path || path.StartsWith(key + ".", StringComparison.Ordinal)
            || path.Contains("." + key + ".", StringComparison.Ordinal) || path.EndsWith("." + key, StringComparison.Ordinal));
    }

    /// <summary>This config with <paramref name="modules"/> (e.g. an adapter's <c>modules_to_save</c>) left
    /// unquantized as well.</summary>
    public QuantizationConfig Skipping(IEnumerable<string> modules)
    {
        var extra = modules.ToList();
        if (extra.Count == 0)
            return this;
        return this with { SkipModules = (SkipModules ?? [OutputHeadName]).Concat(extra).Distinct(StringComparer.Ordinal).ToList() };
    }

    /// <summary>
    /// The <c>quantization_config</c> object of <c>config.json</c>, as transformers writes <c>BitsAndBytesConfig</c>
    /// (<c>to_dict</c>, keys sorted): <c>quant_method "bitsandbytes"</c>, <c>load_in_4bit</c>/<c>load_in_8bit</c> (and
    /// their private twins), the <c>bnb_4bit_*</c> and <c>llm_int8_*</c> fields.
    /// </summary>
    public JsonObject ToJson()
    {
        var fourBit = Type.IsFourBit();
        return new JsonObject
        {
            ["_load_in_4bit"] = fourBit,
            ["_load_in_8bit"] = !fourBit,
            ["bnb_4bit_compute_dtype"] = FourBitWeight.DTypeName(ComputeDType),
            ["bnb_4bit_quant_storage"] = "uint8",
            ["bnb_4bit_quant_type"] = Type == QuantizationType.Int8 ? "fp4" : Type.Name(),
            ["bnb_4bit_use_double_quant"] = DoubleQuant,
            ["llm_int8_enable_fp32_cpu_offload"] = false,
            ["llm_int8_has_fp16_weight"] = false,
            ["llm_int8_skip_modules"] = SkipModules is null ? null : new JsonArray([.. SkipModules.Select(m => JsonValue.Create(m))]),
            ["llm_int8_threshold"] = Int8Threshold,
            ["load_in_4bit"] = fourBit,
            ["load_in_8bit"] = !fourBit,
            ["quant_method"] = "bitsandbytes",
        };
    }

    /// <summary>The <c>quantization_config</c> of the model directory's <c>config.json</c>, or null when it has none.</summary>
    /// <exception cref="LoraException">A quantization method other than bitsandbytes, or an ill-typed field (named).</exception>
    public static QuantizationConfig? FromModelDirectory(string directory)
    {
        var file = Directory.Exists(directory) ? Path.Combine(directory, ModelConfigLoader.FileName) : directory;
        var json = ConfigJson.Parse(file).OptionalObject("quantization_config");
        return json is null ? null : FromJson(json);
    }

    internal static QuantizationConfig FromJson(ConfigJson json)
    {
        var method = json.OptionalString("quant_method") ?? "bitsandbytes";
        if (method != "bitsandbytes")
            throw json.Error("quant_method", $"is '{method}': only bitsandbytes checkpoints (4-bit nf4/fp4, 8-bit LLM.int8()) can be loaded.");
        var fourBit = json.OptionalBool("load_in_4bit") ?? json.OptionalBool("_load_in_4bit") ?? false;
        var eightBit = json.OptionalBool("load_in_8bit") ?? json.OptionalBool("_load_in_8bit") ?? false;
        if (fourBit == eightBit)
            throw json.Error("load_in_4bit", fourBit ? "and load_in_8bit are both true." : "and load_in_8bit are both false or missing: nothing says how the weights are stored.");
        if (json.OptionalBool("llm_int8_has_fp16_weight") == true)
            throw json.Error("llm_int8_has_fp16_weight", "is true: 8-bit layers with trainable fp16 weights are not supported (frozen int8 bases only).");
        if (json.OptionalString("bnb_4bit_quant_storage") is { } storage && storage != "uint8")
            throw json.Error("bnb_4bit_quant_storage", $"is '{storage}': only uint8 storage is supported.");
        var quantType = json.OptionalString("bnb_4bit_quant_type") ?? "fp4";
        var type = eightBit ? QuantizationType.Int8
            : QuantizationTypes.Parse(quantType) is { } t && t.IsFourBit() ? t
            : throw json.Error("bnb_4bit_quant_type", $"is '{quantType}': not nf4 or fp4.");
        var compute = json.OptionalString("bnb_4bit_compute_dtype") switch
        {
            null or "float32" => ScalarType.Float32,
            "bfloat16" => ScalarType.BFloat16,
            "float16" => ScalarType.Float16,
            var other => throw json.Error("bnb_4bit_compute_dtype", $"is '{other}': not bfloat16, float16 or float32."),
        };
        return new QuantizationConfig
        {
            Type = type,
            DoubleQuant = !eightBit && (json.OptionalBool("bnb_4bit_use_double_quant") ?? false),
            ComputeDType = compute,
            Int8Threshold = json.OptionalDouble("llm_int8_threshold") ?? 6.0,
            SkipModules = json.OptionalStringList("llm_int8_skip_modules"),
        };
    }

    /// <summary>A short description: <c>nf4 (double quant, blocksize 64, compute bfloat16)</c>, <c>int8 (threshold 6)</c>.</summary>
    public override string ToString() => Type == QuantizationType.Int8
        ? $"int8 (outlier threshold {Int8Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture)})"
        : $"{Type.Name()} ({(DoubleQuant ? "double quant, " : "")}blocksize {Blocksize}, compute {FourBitWeight.DTypeName(ComputeDType)})";
}
