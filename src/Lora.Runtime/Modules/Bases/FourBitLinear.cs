using Lora.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Modules.Bases;

/// <summary>
/// bitsandbytes' <c>Linear4bit</c> as a base-layer kind: an NF4/FP4 weight (<see cref="FourBitWeight"/>) whose
/// tensors are registered under bitsandbytes' checkpoint keys (<c>weight</c>, <c>weight.absmax</c>,
/// <c>weight.quant_map</c>, <c>weight.nested_absmax</c>, <c>weight.nested_quant_map</c>), a dense bias, and a compute
/// dtype: forward dequantizes to it and runs a dense matmul (<see cref="QuantizedMatmul.FourBit"/>), returning the
/// input's dtype. Adapters of every method sit on it as on a dense layer.
/// </summary>
public sealed class FourBitLinear : QuantizedLinear
{
    public FourBitLinear(FourBitWeight weight, Parameter? bias, ScalarType computeDType)
        : base(weight.Shape[1], weight.Shape[0], bias, weight.DType)
    {
        QuantizedWeight = weight;
        ComputeDType = computeDType;
    }

    /// <summary>The quantized weight and its state.</summary>
    public FourBitWeight QuantizedWeight { get; }

    /// <summary><c>bnb_4bit_compute_dtype</c>: the dtype of the matmul.</summary>
    public ScalarType ComputeDType { get; }

    public override QuantizationType Type => QuantizedWeight.Type;

    public override double BitsPerParameter => QuantizedWeight.BitsPerParameter;

    public override Device Device => QuantizedWeight.Packed.device;

    public override Tensor Forward(Tensor x) => QuantizedMatmul.FourBit(x, QuantizedWeight, Bias, ComputeDType);

    public override Tensor ForwardWithoutBias(Tensor x) => QuantizedMatmul.FourBit(x, QuantizedWeight, null, ComputeDType);

    /// <summary>The dequantized weight <c>(out, in)</c> in its original dtype (<c>dequantize_4bit</c>).</summary>
    public override Tensor Weight() => QuantizedWeight.Dequantize();

    /// <summary>Re-quantizes <paramref name="outIn"/> with the same type, block size and double quantization, into
    /// the same tensors (PEFT's <c>Linear4bit.merge</c>: dequantize, add, <c>Params4bit(...)</c> again).</summary>
    public override void WriteWeight(Tensor outIn)
    {
        using var noGrad = no_grad();
        using var requantized = FourBitWeight.Quantize(outIn.to(DType), Type, QuantizedWeight.Blocksize, QuantizedWeight.DoubleQuant);
        QuantizedWeight.CopyFrom(requantized);
    }

    public override IEnumerable<(string Name, Tensor Buffer)> Buffers => QuantizedWeight.Tensors(DenseLinear.WeightName);

    public override IEnumerable<(string Name, Tensor Value)> ExtraState => [QuantizedWeight.QuantStateEntry(DenseLinear.WeightName)];

    protected override void RebindState(Func<string, Tensor> buffer) => QuantizedWeight.Rebind(buffer, DenseLinear.WeightName);
}
