using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Modules.Bases;

/// <summary>
/// GPT-2's <c>Conv1D</c> kind: the same map as <see cref="DenseLinear"/> with the weight stored <c>(in, out)</c>
/// (PEFT's <c>fan_in_fan_out</c>), <c>y = x W + b</c>, computed as transformers does (<c>addmm</c> over the flattened
/// batch). Adapters see it as <c>(out, in)</c> like any other kind.
/// </summary>
public sealed class Conv1DLinear : DenseLinear
{
    /// <summary>An uninitialised <c>(in, out)</c> weight.</summary>
    public Conv1DLinear(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base([inFeatures, outFeatures], inFeatures, outFeatures, hasBias, dtype, device)
    {
    }

    /// <summary>Over an existing <c>(in, out)</c> weight, shared not copied.</summary>
    public Conv1DLinear(Parameter weightInOut, Parameter? bias)
        : base(weightInOut, bias, weightInOut.shape[0], weightInOut.shape[1])
    {
    }

    public override bool FanInFanOut => true;

    public override Tensor Forward(Tensor x)
    {
        // addmm(b, x (N, in), W (in, out)) → (N, out), viewed back to (…, out).
        using var scope = NewDisposeScope();
        long[] outShape = [.. x.shape[..^1], OutFeatures];
        var flat = x.reshape(-1, InFeatures);
        var y = Bias is null ? flat.matmul(WeightParameter) : addmm(Bias, flat, WeightParameter, 1, 1);
        return y.view(outShape).MoveToOuterDisposeScope();
    }

    public override Tensor ForwardWithoutBias(Tensor x) => x.matmul(WeightParameter);

    public override Tensor Weight() => WeightParameter.t();

    public override void WriteWeight(Tensor outIn)
    {
        using var noGrad = no_grad();
        WeightParameter.copy_(outIn.t());
    }
}
