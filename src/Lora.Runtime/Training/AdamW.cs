using Lora.Backend;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// AdamW with PyTorch's semantics (<c>torch.optim.AdamW</c>, decoupled weight decay, no amsgrad) updated by the fused
/// multi-tensor kernel (<c>fused=True</c>: torch/optim/adam.py <c>_fused_adam</c> → <c>torch._fused_adamw_</c>): per
/// parameter group and (device, dtype) one kernel call instead of TorchSharp's ~9 launches per parameter
/// (<c>mul_, mul_, add_, mul_, addcmul_, sqrt, div, add_, addcdiv_</c>; ~800 for a q,v r8 LoRA of TinyLlama). The
/// state is TorchSharp's own (<see cref="TorchSharp.Modules.AdamW.State"/>: step, exp_avg, exp_avg_sq per parameter), so checkpoints,
/// <c>load_state_dict</c> and the parameter groups' learning rates work unchanged. Same update, per element:
/// <code>
///   θ ← θ(1 − lr·wd);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)
/// </code>
/// (the kernel computes m as <c>lerp(m, g, 1−β₁)</c>, in fp32 "opmath": results agree with the per-parameter loop to
/// float rounding). The step counts are kept on the host (no read-back); the kernel gets them as one float scalar per
/// group on the device. The class is named <c>AdamW</c> because TorchSharp writes the optimizer's type name into
/// its state file and checks it on load: so its checkpoints (<c>optimizer.bin</c>) are TorchSharp AdamW checkpoints,
/// readable by either. <see cref="Step(Tensor?)"/> takes GradScaler's <c>found_inf</c>: when it is non-zero on the
/// device the kernel changes nothing, which is how the trainer skips a non-finite step without waiting for the GPU.
/// </summary>
public sealed class AdamW : TorchSharp.Modules.AdamW
{
    /// <summary>Kernel calls made by <see cref="Step"/> so far (one per group and device/dtype).</summary>
    public long KernelCalls { get; private set; }

    /// <param name="groups">Parameter groups (their options: lr, betas, eps, weight decay; amsgrad and maximize must be off).</param>
    /// <param name="lr">Default learning rate.</param>
    /// <param name="beta1">Default β₁.</param>
    /// <param name="beta2">Default β₂.</param>
    /// <param name="eps">Default ε.</param>
    /// <param name="weightDecay">Default weight decay.</param>
    public AdamW(IEnumerable<ParamGroup> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0)
        : base(groups, lr, beta1, beta2, eps, weightDecay)
    {
    }

    /// <summary>One group of every parameter with the given hyper-parameters.</summary>
    public AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0)
        : base(parameters, lr, beta1, beta2, eps, weightDecay)
    {
    }

    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is not null)
            throw new NotSupportedException("AdamW.step does not take a closure (the fused update runs once).");
        Step(null);
        return null!;
    }

    /// <summary>One update of every parameter that has a gradient; none when <paramref name="foundInf"/> (a float
    /// scalar on the parameters' device) is non-zero.</summary>
    public void Step(Tensor? foundInf)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var group in _parameter_groups)
        {
            var options = (Options)group.Options;
            if (options.amsgrad == true || options.maximize == true)
                throw new NotSupportedException("the fused AdamW does not support amsgrad or maximize.");
            var members = new List<(Parameter Parameter, Tensor Grad, State State)>();
            foreach (var parameter in group.Parameters)
            {
                if (parameter.grad is not { } grad)
                    continue;
                var state = (State)_state[parameter.Handle];
                state.step += 1;
                members.Add((parameter, grad, state));
            }

            // torch/optim/adam.py _fused_adam: tensors grouped by device and dtype (here also by step, equal in practice).
            foreach (var part in members.GroupBy(m => (m.Parameter.device_type, m.Parameter.device_index, m.Parameter.dtype, m.State.step)))
            {
                var list = part.ToList();
                var first = list[0].Parameter;
                var step = full([], (double)part.Key.step, ScalarType.Float32, first.device);
                var found = foundInf is null ? null : Devices.Same(foundInf.device, first.device) ? foundInf.to(ScalarType.Float32) : foundInf.to(ScalarType.Float32, first.device);
                MultiTensorOps.FusedAdamW(
                    list.Select(m => (Tensor)m.Parameter).ToArray(),
                    list.Select(m => m.Grad).ToArray(),
                    list.Select(m => m.State.exp_avg).ToArray(),
                    list.Select(m => m.State.exp_avg_sq).ToArray(),
                    list.Select(_ => step).ToArray(),
                    options.LearningRate!.Value, options.beta1!.Value, options.beta2!.Value, options.weight_decay!.Value, options.eps!.Value, found);
                KernelCalls++;
            }
        }
    }

    /// <summary>Drops every gradient (<c>zero_grad(set_to_none=True)</c>, PyTorch's default): no kernel runs, and
    /// the next backward pass writes fresh gradients instead of adding into zeroed ones.</summary>
    public override void zero_grad()
    {
        foreach (var group in _parameter_groups)
        {
            foreach (var parameter in group.Parameters)
                parameter.grad = null;
        }
    }
}
