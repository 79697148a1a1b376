using Lora.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Modules;

/// <summary>
/// RMSNorm as in transformers' <c>LlamaRMSNorm</c>: in fp32, <c>x / sqrt(mean(x², -1) + eps)</c>, cast back to the
/// input dtype, then scaled by <c>weight</c> <c>(dim)</c>.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    /// <summary><c>(dim)</c>.</summary>
    [ComponentName(Name = "weight")]
    public Parameter Weight;

    public RmsNorm(long dim, double eps, ScalarType dtype = ScalarType.Float32, torch.Device? device = null)
        : base(nameof(RmsNorm))
    {
        Eps = eps;
        Weight = new Parameter(ones([dim], dtype, device));
        RegisterComponents();
    }

    public double Eps { get; }

    /// <summary><c>x (…, dim) → (…, dim)</c>.</summary>
    /// <remarks>Under autograd this is one function that keeps only the input and the fp32 reciprocal RMS for the
    /// backward pass (<see cref="RmsNormFunction"/>); the values are those of the composite ops.</remarks>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = FusedKernels.MemoryLean(x.device) && is_grad_enabled() && (x.requires_grad || Weight.requires_grad)
            ? RmsNormFunction.Apply(x, Weight, Eps)
            : RmsNormFunction.Composite(x, Weight, Eps, out _);
        return y.MoveToOuterDisposeScope();
    }
}
