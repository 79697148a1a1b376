using Lora.Modules;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>GPT-2 MLP: <c>dropout(c_proj(gelu(c_fc(x))))</c>, <c>(B, T, C) → (B, T, C)</c> through <c>n_inner</c>.</summary>
public sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "c_fc")]
    public Conv1D CFc;

    [ComponentName(Name = "c_proj")]
    public Conv1D CProj;

    [ComponentName(Name = "dropout")]
    public Dropout Dropout;

    public Gpt2Mlp(Gpt2Config config, ScalarType dtype, torch.Device? device)
        : base(nameof(Gpt2Mlp))
    {
        CFc = new Conv1D(config.HiddenSize, config.InnerSize, hasBias: true, dtype, device);
        CProj = new Conv1D(config.InnerSize, config.HiddenSize, hasBias: true, dtype, device);
        Dropout = nn.Dropout(config.ResidPdrop);
        Approximate = config.Activation == "gelu" ? GELU.Approximate.none : GELU.Approximate.tanh;
        RegisterComponents();
    }

    /// <summary>gelu_new / gelu_pytorch_tanh: tanh approximation; gelu: exact erf.</summary>
    public GELU.Approximate Approximate { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.gelu(CFc.call(x), Approximate);      // (B, T, n_inner)
        return Dropout.call(CProj.call(h)).MoveToOuterDisposeScope(); // (B, T, C)
    }
}
