using Lora.Backend;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// <c>torch.nn.utils.clip_grad_norm_</c> with <c>foreach=True</c> (torch/nn/utils/clip_grad.py, <c>_get_total_norm</c>
/// and <c>_clip_grads_with_norm_</c>): the global L2 norm over all gradients,
/// <c>‖g‖ = ‖(‖g₁‖₂, …, ‖gₙ‖₂)‖₂</c> (computed in fp32), and, when <c>max_norm &gt; 0</c>, every gradient scaled in
/// place by <c>min(1, max_norm / (‖g‖ + 1e-6))</c>. Multi-tensor kernels (<c>_foreach_norm</c>, <c>_foreach_mul_</c>):
/// a handful of launches per device and dtype instead of three per parameter, and no value read back to the host
/// (<see cref="ClipGlobalNormAsync"/>).
/// </summary>
public static class GradientClipping
{
    /// <summary>Returns the norm before clipping (reads it back: a device synchronisation).
    /// <paramref name="maxNorm"/> 0 measures without clipping.</summary>
    public static double ClipGlobalNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        using var norm = ClipGlobalNormAsync(parameters, maxNorm);
        return norm.item<float>();
    }

    /// <summary>The norm before clipping as an fp32 scalar tensor on the gradients' (first) device, without waiting
    /// for it; <paramref name="maxNorm"/> 0 measures without clipping.</summary>
    public static Tensor ClipGlobalNormAsync(IEnumerable<Parameter> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0)
            return zeros([], ScalarType.Float32).MoveToOuterDisposeScope();
        var groups = grads.GroupBy(g => (g.device_type, g.device_index, g.dtype)).Select(g => g.ToArray()).ToList();
        var target = grads[0].device;
        var partials = groups.Select(g => MultiTensorOps.TotalNorm(g)).Select(n => Devices.Same(n.device, target) ? n : n.to(target)).ToArray();
        var total = partials.Length == 1 ? partials[0] : stack(partials).norm(2);
        if (maxNorm > 0)
        {
            var coefficient = (maxNorm / (total + 1e-6)).clamp_max(1.0);
            foreach (var group in groups)
                MultiTensorOps.Scale(group, coefficient.to(group[0].dtype, group[0].device));
        }

        return total.MoveToOuterDisposeScope();
    }
}
