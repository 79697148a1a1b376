using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// <c>torch.nn.utils.clip_grad_norm_</c>: the global L2 norm over all gradients,
/// <c>‖g‖ = ‖(‖g₁‖₂, …, ‖gₙ‖₂)‖₂</c> (computed in fp32), and, when <c>max_norm &gt; 0</c>, every gradient scaled in
/// place by <c>min(1, max_norm / (‖g‖ + 1e-6))</c>.
/// </summary>
public static class GradientClipping
{
    /// <summary>Returns the norm before clipping. <paramref name="maxNorm"/> 0 measures without clipping.</summary>
    public static double ClipGlobalNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0)
            return 0;
        var norms = grads.Select(g => linalg.vector_norm(g.to(ScalarType.Float32), 2)).ToArray();
        var total = linalg.vector_norm(stack(norms), 2);
        var totalValue = total.item<float>();
        if (maxNorm > 0)
        {
            var coefficient = (maxNorm / (total + 1e-6)).clamp_max(1.0);
            foreach (var g in grads)
                g.mul_(coefficient.to(g.dtype));
        }

        return totalValue;
    }
}
