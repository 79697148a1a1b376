using Lora.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Modules.Bases;

/// <summary>
/// bitsandbytes' <c>Linear8bitLt</c> (frozen, <c>has_fp16_weights=False</c>) as a base-layer kind: an LLM.int8()
/// weight (<see cref="Int8Weight"/>: <c>weight</c> int8 and <c>SCB</c>, registered under those keys), a dense bias,
/// and the outlier threshold (<c>llm_int8_threshold</c>) of its mixed-precision matmul
/// (<see cref="QuantizedMatmul.Int8"/>).
/// </summary>
public sealed class Int8Linear : QuantizedLinear
{
    public Int8Linear(Int8Weight weight, Parameter? bias, double threshold)
        : base(weight.InFeatures, weight.OutFeatures, bias, weight.DType)
    {
        if (threshold < 0 || double.IsNaN(threshold))
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "the outlier threshold must be ≥ 0 (0 turns the decomposition off).");
        QuantizedWeight = weight;
        Threshold = threshold;
    }

    public Int8Weight QuantizedWeight { get; }

    /// <summary>Input columns holding any |x| ≥ this go through the 16-bit matmul; 0 turns it off.</summary>
    public double Threshold { get; }

    public override QuantizationType Type => QuantizationType.Int8;

    public override double BitsPerParameter => QuantizedWeight.BitsPerParameter;

    public override Device Device => QuantizedWeight.Codes.device;

    public override Tensor Forward(Tensor x) => QuantizedMatmul.Int8(x, QuantizedWeight, Bias, Threshold);

    public override Tensor ForwardWithoutBias(Tensor x) => QuantizedMatmul.Int8(x, QuantizedWeight, null, Threshold);

    /// <summary>The dequantized weight <c>(out, in)</c> (<c>int8_vectorwise_dequant</c>) in its original dtype.</summary>
    public override Tensor Weight() => QuantizedWeight.Dequantize();

    /// <summary>Re-quantizes <paramref name="outIn"/> row-wise into the same tensors (PEFT's <c>Linear8bitLt.merge</c>).</summary>
    public override void WriteWeight(Tensor outIn)
    {
        using var noGrad = no_grad();
        using var requantized = Int8Weight.Quantize(outIn.to(DType));
        QuantizedWeight.Codes.copy_(requantized.Codes);
        QuantizedWeight.Scales.copy_(requantized.Scales);
    }

    public override IEnumerable<(string Name, Tensor Buffer)> Buffers => QuantizedWeight.Tensors();

    public override IEnumerable<(string Name, Tensor Value)> ExtraState => [Int8Weight.FormatEntry()];

    protected override void RebindState(Func<string, Tensor> buffer) => QuantizedWeight.Rebind(buffer);
}
