using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>GPT-2 block: <c>h = x + attn(ln_1(x))</c>, <c>out = h + mlp(ln_2(h))</c>.</summary>
public sealed class Gpt2Block : nn.Module
{
    [ComponentName(Name = "ln_1")]
    public LayerNorm Ln1;

    [ComponentName(Name = "attn")]
    public Gpt2Attention Attn;

    [ComponentName(Name = "ln_2")]
    public LayerNorm Ln2;

    [ComponentName(Name = "mlp")]
    public Gpt2Mlp Mlp;

    public Gpt2Block(Gpt2Config config, int layerIndex, ScalarType dtype, torch.Device? device)
        : base(nameof(Gpt2Block))
    {
        Ln1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        Attn = new Gpt2Attention(config, layerIndex, dtype, device);
        Ln2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        Mlp = new Gpt2Mlp(config, dtype, device);
        RegisterComponents();
    }

    /// <summary><c>(B, T, C) → (B, T, C)</c>.</summary>
    public Tensor Forward(Tensor x, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = x + Attn.Forward(Ln1.call(x), mask, cache);
        return (h + Mlp.call(Ln2.call(h))).MoveToOuterDisposeScope();
    }
}
