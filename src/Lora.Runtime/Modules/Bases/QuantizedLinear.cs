using Lora.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Modules.Bases;

/// <summary>
/// What the frozen quantized kinds share (<see cref="FourBitLinear"/>, <see cref="Int8Linear"/>): the weight is
/// <c>(out, in)</c> quantized state held as buffers (never trained, never converted by <c>module.to(dtype)</c>), the
/// bias stays a dense parameter, <see cref="LinearBase.Weight"/> dequantizes and <see cref="LinearBase.WriteWeight"/>
/// re-quantizes (a merge into a quantized base rounds: see docs/quantization.md).
/// </summary>
public abstract class QuantizedLinear : LinearBase
{
    private Parameter? _bias;

    protected QuantizedLinear(long inFeatures, long outFeatures, Parameter? bias, ScalarType dtype)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _bias = bias;
        DType = dtype;
        if (bias is not null && (bias.ndim != 1 || bias.shape[0] != outFeatures))
            throw new ArgumentException($"bias must be ({outFeatures}).", nameof(bias));
    }

    public override long InFeatures { get; }

    public override long OutFeatures { get; }

    public override Parameter? Bias => _bias;

    /// <summary>The dtype the weight had before quantization; <see cref="LinearBase.Weight"/> dequantizes to it.</summary>
    public override ScalarType DType { get; }

    /// <summary>How the weight is stored.</summary>
    public abstract QuantizationType Type { get; }

    /// <summary>Bits stored per weight element (codes, scales and tables, from the stored tensors).</summary>
    public abstract double BitsPerParameter { get; }

    public override bool IsQuantized => true;

    public override void InitializeWeights(double std, Generator? generator) =>
        throw new LoraException("a quantized base has no weights to initialize: initialize the dense model, then quantize it (ModelQuantizer.Quantize).");

    public override IEnumerable<(string Name, Parameter Parameter)> Parameters =>
        _bias is null ? [] : [(DenseLinear.BiasName, _bias)];

    public override void Rebind(Func<string, Parameter> parameter, Func<string, Tensor> buffer)
    {
        if (_bias is not null)
            _bias = parameter(DenseLinear.BiasName);
        RebindState(buffer);
    }

    /// <summary>Takes the quantized tensors the host holds again.</summary>
    protected abstract void RebindState(Func<string, Tensor> buffer);
}
