using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Modules.Bases;

/// <summary>
/// The dense kind, as <c>nn.Linear</c> stores it: <c>weight</c> <c>(out, in)</c>, optional <c>bias</c> <c>(out)</c>,
/// <c>y = x Wᵀ + b</c>.
/// </summary>
public class DenseLinear : LinearBase
{
    /// <summary>Names the host registers the tensors under (the checkpoint keys).</summary>
    public const string WeightName = "weight";

    /// <inheritdoc cref="WeightName"/>
    public const string BiasName = "bias";

    private Parameter _weight;
    private Parameter? _bias;

    /// <summary>Uninitialised storage of <paramref name="shape"/> (fill it from a checkpoint or
    /// <see cref="InitializeWeights"/>); on the meta device inside a <see cref="DeferredStorage"/> scope.</summary>
    protected DenseLinear(long[] shape, long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device? device)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        device = DeferredStorage.DeviceFor(device);
        _weight = new Parameter(empty(shape, dtype, device));
        _bias = hasBias ? new Parameter(empty([outFeatures], dtype, device)) : null;
    }

    /// <summary>An uninitialised <c>(out, in)</c> weight.</summary>
    public DenseLinear(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype = ScalarType.Float32, Device? device = null)
        : this([outFeatures, inFeatures], inFeatures, outFeatures, hasBias, dtype, device)
    {
    }

    /// <summary>Over an existing weight of the stored shape, shared not copied (a dequantized weight).</summary>
    protected DenseLinear(Parameter weight, Parameter? bias, long inFeatures, long outFeatures)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _weight = weight;
        _bias = bias;
    }

    /// <summary>Over an existing <c>(out, in)</c> weight, shared not copied (a tied <c>lm_head</c>).</summary>
    public DenseLinear(Parameter weight, Parameter? bias)
    {
        if (weight.ndim != 2)
            throw new ArgumentException($"weight must be (out, in), got ({string.Join(", ", weight.shape)}).", nameof(weight));
        OutFeatures = weight.shape[0];
        InFeatures = weight.shape[1];
        _weight = weight;
        _bias = bias;
    }

    public override long InFeatures { get; }

    public override long OutFeatures { get; }

    /// <summary>The stored weight parameter: <c>(out, in)</c> here, <c>(in, out)</c> for <see cref="Conv1DLinear"/>.</summary>
    public Parameter WeightParameter => _weight;

    public override Parameter? Bias => _bias;

    public override Device Device => _weight.device;

    public override ScalarType DType => _weight.dtype;

    public override Tensor Forward(Tensor x) => nn.functional.linear(x, _weight, _bias);

    public override Tensor ForwardWithoutBias(Tensor x) => nn.functional.linear(x, _weight);

    public override Tensor Weight() => _weight.alias();

    public override void WriteWeight(Tensor outIn)
    {
        using var noGrad = no_grad();
        _weight.copy_(outIn);
    }

    public override void InitializeWeights(double std, Generator? generator)
    {
        using var noGrad = no_grad();
        _weight.normal_(0, std, generator);
        _bias?.zero_();
    }

    public override IEnumerable<(string Name, Parameter Parameter)> Parameters =>
        _bias is null ? [(WeightName, _weight)] : [(WeightName, _weight), (BiasName, _bias)];

    public override void Rebind(Func<string, Parameter> parameter, Func<string, Tensor> buffer)
    {
        _weight = parameter(WeightName);
        if (_bias is not null)
            _bias = parameter(BiasName);
    }
}
