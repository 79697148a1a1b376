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
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var variance = x32.pow(2).mean([-1], keepdim: true);
        var normed = (x32 * (variance + Eps).rsqrt()).to(x.dtype);
        return (Weight * normed).MoveToOuterDisposeScope();
    }
}
