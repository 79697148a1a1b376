using Lora.Modules;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>Pre-norm decoder block: <c>h = x + attn(norm₁(x))</c>, <c>out = h + mlp(norm₂(h))</c>.</summary>
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

    public LlamaDecoderLayer(LlamaConfig config, int layerIndex, ScalarType dtype, torch.Device? device)
        : base(nameof(LlamaDecoderLayer))
    {
        SelfAttn = new LlamaAttention(config, layerIndex, dtype, device);
        Mlp = new LlamaMlp(config, dtype, device);
        InputLayernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        PostAttentionLayernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    /// <summary><c>(B, T, C) → (B, T, C)</c>.</summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = x + SelfAttn.Forward(InputLayernorm.call(x), cos, sin, mask, cache);
        return (h + Mlp.call(PostAttentionLayernorm.call(h))).MoveToOuterDisposeScope();
    }
}
