using Lora.Kernels;
using Lora.Modules;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>SwiGLU MLP: <c>down(silu(gate(x)) · up(x))</c>, <c>(B, T, C) → (B, T, C)</c> through width
/// <c>intermediate_size</c>.</summary>
public sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "gate_proj")]
    public LinearLayer GateProj;

    [ComponentName(Name = "up_proj")]
    public LinearLayer UpProj;

    [ComponentName(Name = "down_proj")]
    public LinearLayer DownProj;

    public LlamaMlp(LlamaConfig config, ScalarType dtype, torch.Device? device)
        : base(nameof(LlamaMlp))
    {
        GateProj = new LinearLayer(config.HiddenSize, config.IntermediateSize, config.MlpBias, dtype, device);
        UpProj = new LinearLayer(config.HiddenSize, config.IntermediateSize, config.MlpBias, dtype, device);
        DownProj = new LinearLayer(config.IntermediateSize, config.HiddenSize, config.MlpBias, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var shared = SharedAdapterInput.Begin(x);                 // gate and up read the same x
        var gate = GateProj.call(x);                                    // (B, T, I)
        var up = UpProj.call(x);
        var h = FusedKernels.MemoryLean(gate.device) && is_grad_enabled() && (gate.requires_grad || up.requires_grad) && gate.dtype == up.dtype
            ? SwiGluFunction.Apply(gate, up)                            // keeps gate and up, not silu(gate)
            : nn.functional.silu(gate) * up;
        return DownProj.call(h).MoveToOuterDisposeScope();             // (B, T, C)
    }
}
