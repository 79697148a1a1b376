using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>GPT-2 block: <c>h = x + attn(ln_1(x))</c>, <c>out = h + mlp(ln_2(h))</c> (each sum through a
/// <see cref="Modules.ResidualAdapterLayer"/> slot, where bottleneck adapters act).</summary>
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

    /// <summary>Where the attention output joins the residual stream (AdapterHub's slot for bottleneck adapters).</summary>
    [ComponentName(Name = Modules.ResidualAdapterLayer.AttentionSlot)]
    public Modules.ResidualAdapterLayer AttentionAdapters;

    /// <summary>Where the MLP output joins the residual stream (AdapterHub's slot for bottleneck adapters).</summary>
    [ComponentName(Name = Modules.ResidualAdapterLayer.OutputSlot)]
    public Modules.ResidualAdapterLayer OutputAdapters;

    public Gpt2Block(Gpt2Config config, int layerIndex, ScalarType dtype, torch.Device? device)
        : base(nameof(Gpt2Block))
    {
        Ln1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        Attn = new Gpt2Attention(config, layerIndex, dtype, device);
        Ln2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        Mlp = new Gpt2Mlp(config, dtype, device);
        AttentionAdapters = new Modules.ResidualAdapterLayer("mh_adapter");
        OutputAdapters = new Modules.ResidualAdapterLayer("output_adapter");
        RegisterComponents();
    }

    /// <summary><c>(B, T, C) → (B, T, C)</c>.</summary>
    public Tensor Forward(Tensor x, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = AttentionAdapters.Forward(Attn.Forward(Ln1.call(x), mask, cache), x); // x + attn
        return OutputAdapters.Forward(Mlp.call(Ln2.call(h)), h).MoveToOuterDisposeScope(); // h + mlp
    }
}
