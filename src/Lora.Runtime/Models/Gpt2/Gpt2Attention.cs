using Lora.Modules;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// GPT-2 self-attention: fused <c>c_attn</c> <c>(C → 3C)</c> split into q, k, v <c>(B, H, T, d)</c>, scaled dot
/// product with scale 1/sqrt(d), <c>c_proj</c>. Learned absolute positions, so no rotary embeddings.
/// </summary>
public sealed class Gpt2Attention : nn.Module
{
    [ComponentName(Name = "c_attn")]
    public Conv1D CAttn;

    [ComponentName(Name = "c_proj")]
    public Conv1D CProj;

    [ComponentName(Name = "attn_dropout")]
    public Dropout AttnDropout;

    [ComponentName(Name = "resid_dropout")]
    public Dropout ResidDropout;

    public Gpt2Attention(Gpt2Config config, int layerIndex, ScalarType dtype, torch.Device? device)
        : base(nameof(Gpt2Attention))
    {
        LayerIndex = layerIndex;
        NumHeads = config.NumHeads;
        HeadDim = config.HeadDim;
        CAttn = new Conv1D(config.HiddenSize, 3 * config.HiddenSize, hasBias: true, dtype, device);
        CProj = new Conv1D(config.HiddenSize, config.HiddenSize, hasBias: true, dtype, device);
        AttnDropout = nn.Dropout(config.AttnPdrop);
        ResidDropout = nn.Dropout(config.ResidPdrop);
        RegisterComponents();
    }

    public int LayerIndex { get; }

    public int NumHeads { get; }

    public int HeadDim { get; }

    /// <summary><c>x (B, T, C)</c>, mask <c>(B, 1, T, T_past + T)</c> or null (causal) → <c>(B, T, C)</c>.</summary>
    public Tensor Forward(Tensor x, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var (b, t, c) = (x.shape[0], x.shape[1], x.shape[2]);
        var qkv = CAttn.call(x).split(c, 2);                                     // 3 × (B, T, C)
        var q = qkv[0].view(b, t, NumHeads, HeadDim).transpose(1, 2);            // (B, H, T, d)
        var k = qkv[1].view(b, t, NumHeads, HeadDim).transpose(1, 2);
        var v = qkv[2].view(b, t, NumHeads, HeadDim).transpose(1, 2);
        if (cache is not null)
            (k, v) = cache.Update(LayerIndex, k, v);                             // (B, H, T_past + T, d)
        var dropout = training ? AttnDropout.p : 0.0;
        var y = Attention.ScaledDotProduct(q, k, v, mask, dropout);              // (B, H, T, d)
        y = y.transpose(1, 2).reshape(b, t, c);                                  // (B, T, C)
        return ResidDropout.call(CProj.call(y)).MoveToOuterDisposeScope();
    }
}
