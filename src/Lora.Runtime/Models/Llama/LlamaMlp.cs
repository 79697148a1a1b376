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
        var h = nn.functional.silu(GateProj.call(x)) * UpProj.call(x); // (B, T, I)
        return DownProj.call(h).MoveToOuterDisposeScope();             // (B, T, C)
    }
}
