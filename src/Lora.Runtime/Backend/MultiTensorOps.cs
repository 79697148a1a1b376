using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Backend;

/// <summary>
/// libtorch's multi-tensor kernels, which TorchSharp does not bind, reached through TorchScript
/// (<c>torch.jit.compile</c>; the aten builtins resolve there): <c>torch._fused_adamw_</c> (one multi-tensor launch
/// for the whole AdamW update on CUDA, a fused vectorised loop on the CPU: aten/src/ATen/native/cuda/fused_adamw_impl.cu,
/// aten/src/ATen/native/FusedAdam.cpp) and the <c>torch._foreach_*</c> ops that <c>torch.nn.utils.clip_grad_norm_</c>
/// uses with <c>foreach=True</c> (torch/nn/utils/clip_grad.py, <c>_get_total_norm</c> and <c>_clip_grads_with_norm_</c>).
/// None of these reads a value back to the host. The script is compiled once per process; a compile error there aborts
/// the process instead of throwing (DESIGN.md), so the tests run every function.
/// </summary>
internal static class MultiTensorOps
{
    private const string Script = """
        def fused_adamw(params: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor], steps: List[Tensor], lr: float, beta1: float, beta2: float, weight_decay: float, eps: float, found_inf: Optional[Tensor]) -> Tensor:
            torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False, grad_scale=None, found_inf=found_inf)
            return steps[0]

        def total_norm(grads: List[Tensor]) -> Tensor:
            # dtype 6 = torch.float32 (the script has no Python resolver for torch.float32)
            norms = torch._foreach_norm(grads, 2.0, dtype=6)
            return torch.stack(norms).norm(2.0)

        def scale_(grads: List[Tensor], factor: Tensor) -> Tensor:
            torch._foreach_mul_(grads, factor)
            return factor

        """;

    private static readonly Lazy<jit.CompilationUnit> Unit = new(() => jit.compile(Script), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// <c>torch._fused_adamw_</c> over tensors of one device and dtype (PyTorch's <c>_fused_adamw</c> groups them so,
    /// torch/optim/adam.py). The caller has incremented the steps already, as PyTorch's wrapper does; the kernel reads
    /// them (float, on the parameters' device). A non-zero <paramref name="foundInf"/> (a float scalar on that device)
    /// makes the kernel leave everything unchanged, as with <c>GradScaler</c>.
    /// </summary>
    public static void FusedAdamW(Tensor[] parameters, Tensor[] grads, Tensor[] expAvgs, Tensor[] expAvgSqs, Tensor[] steps,
        double lr, double beta1, double beta2, double weightDecay, double eps, Tensor? foundInf)
    {
        using var result = Unit.Value.invoke<Tensor>("fused_adamw", parameters, grads, expAvgs, expAvgSqs, steps, lr, beta1, beta2, weightDecay, eps, foundInf);
    }

    /// <summary>‖(‖g₁‖₂, …, ‖gₙ‖₂)‖₂ in fp32 (a scalar on the gradients' device).</summary>
    public static Tensor TotalNorm(Tensor[] grads) => Unit.Value.invoke<Tensor>("total_norm", new object[] { grads });

    /// <summary><c>g ← g · factor</c> for every g (one dtype; <paramref name="factor"/> a scalar tensor of it).</summary>
    public static void Scale(Tensor[] grads, Tensor factor)
    {
        using var result = Unit.Value.invoke<Tensor>("scale_", grads, factor);
    }
}
