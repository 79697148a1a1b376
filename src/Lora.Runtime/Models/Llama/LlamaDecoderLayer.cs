using Lora.Modules;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>Pre-norm decoder block: <c>h = x + attn(norm₁(x))</c>, <c>out = h + mlp(norm₂(h))</c> (each sum through a
/// <see cref="ResidualAdapterLayer"/> slot, where bottleneck adapters act).</summary>
public sealed class LlamaDecoderLayer : nn.Module
{
    [ComponentName(Name = "self_attn")]
    public LlamaAttention SelfAttn;

    [ComponentName(Name = "mlp")]
    public LlamaMlp Mlp;

    [ComponentName(Name = "input_layernorm")]
    public RmsNorm InputLayernorm;

    [ComponentName(Name = "post_attention_layernorm")]
    public RmsNorm PostAttentionLayernorm;

    /// <summary>Where the attention output joins the residual stream (AdapterHub's slot for bottleneck adapters).</summary>
    [ComponentName(Name = ResidualAdapterLayer.AttentionSlot)]
    public ResidualAdapterLayer AttentionAdapters;

    /// <summary>Where the MLP output joins the residual stream (AdapterHub's slot for bottleneck adapters).</summary>
    [ComponentName(Name = ResidualAdapterLayer.OutputSlot)]
    public ResidualAdapterLayer OutputAdapters;

    public LlamaDecoderLayer(LlamaConfig config, int layerIndex, ScalarType dtype, torch.Device? device)
        : base(nameof(LlamaDecoderLayer))
    {
        SelfAttn = new LlamaAttention(config, layerIndex, dtype, device);
        Mlp = new LlamaMlp(config, dtype, device);
        InputLayernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        PostAttentionLayernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        AttentionAdapters = new ResidualAdapterLayer("mh_adapter");
        OutputAdapters = new ResidualAdapterLayer("output_adapter");
        RegisterComponents();
    }

    /// <summary><c>(B, T, C) → (B, T, C)</c>.</summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache, PackedSegments? segments = null)
    {
        using var scope = NewDisposeScope();
        var h = AttentionAdapters.Forward(SelfAttn.Forward(InputLayernorm.call(x), cos, sin, mask, cache, segments), x); // x + attn
        return OutputAdapters.Forward(Mlp.call(PostAttentionLayernorm.call(h)), h).MoveToOuterDisposeScope();  // h + mlp
    }
}
