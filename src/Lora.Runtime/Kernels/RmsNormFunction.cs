using Lora.Backend;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Lora.Kernels;

/// <summary>
/// transformers' <c>LlamaRMSNorm</c> (<c>weight · (x₃₂ · rsqrt(mean(x₃₂²) + eps)).to(x.dtype)</c>) as one autograd
/// function that keeps only what its backward pass needs: the input in its own dtype and the fp32 reciprocal RMS
/// <c>r</c> <c>(…, 1)</c>. Differentiated op by op, autograd would keep the fp32 copy of a bf16 input (twice its size)
/// and, with a trainable weight, the normalised activations too. The forward runs the same ops in the same order as
/// <c>Modules/RmsNorm</c>'s composite path, so the values are identical; the backward is the closed form
/// <c>∂x = r·g' − x · r³ · mean(g'·x)</c> with <c>g' = (g·w)</c> cast as autograd casts it (to x's dtype, then fp32),
/// and <c>∂w = Σ g · n</c> over all positions.
/// </summary>
internal sealed class RmsNormFunction : SingleTensorFunction<RmsNormFunction>
{
    public override string Name => "RmsNorm";

    /// <summary><c>x (…, C)</c>, <paramref name="weight"/> <c>(C)</c> → <c>(…, C)</c> in the promoted dtype.</summary>
    public static Tensor Apply(Tensor x, Tensor weight, double eps) => apply(x, weight, eps);

    /// <summary>The composite forward (also the no-grad path of <c>RmsNorm</c>), kept here so that both paths run
    /// literally the same ops.</summary>
    public static Tensor Composite(Tensor x, Tensor weight, double eps, out Tensor reciprocalRms)
    {
        var x32 = x.to(ScalarType.Float32);
        var variance = x32.pow(2).mean([-1], keepdim: true);
        reciprocalRms = (variance + eps).rsqrt();
        var normed = (x32 * reciprocalRms).to(x.dtype);
        return weight * normed;
    }

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        var eps = (double)vars[2];
        Tensor y, r;
        if (x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32)
        {
            // The composite's ops with the last product in place (its left factor is a fresh temporary here):
            // the same values, one (…, C) allocation fewer.
            r = x.pow(2).mean([-1], keepdim: true).add_(eps).rsqrt_();
            y = (x * r).mul_(weight);
        }
        else
        {
            y = Composite(x, weight, eps, out r);
        }

        ctx.save_for_backward([x, r, weight]);
        ctx.save_data("x_grad", x.requires_grad);
        ctx.save_data("w_grad", weight.requires_grad);
        return y;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        var needX = (bool)ctx.get_data("x_grad");
        var needW = (bool)ctx.get_data("w_grad");
        Tensor? gradX = null, gradW = null;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var (x, r, weight) = (saved[0], saved[1], saved[2]);
            var x32 = x.to(ScalarType.Float32);
            if (needW)
            {
                var normed = (x32 * r).to(x.dtype);
                gradW = (grad * normed).reshape(-1, weight.shape[^1]).sum(dim: 0).to(weight.dtype).DetachFromDisposeScope();
            }

            if (needX)
            {
                // d(normed) as autograd hands it on: g·w in the promoted dtype, cast to x's dtype (the .to(x.dtype)
                // step), then to fp32 (the x.to(fp32) step).
                var g = (grad * weight).to(x.dtype).to(ScalarType.Float32);
                var coefficient = (g * x32).mean([-1], keepdim: true) * r.pow(3); // (…, 1)
                gradX = (g * r).addcmul_(x32, coefficient, -1).to(x.dtype).DetachFromDisposeScope();
            }
        }

        grad.Dispose();
        return PendingGradients.Return(gradX, gradW, null);
    }
}
