using Lora.Modules;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Multi-head self-attention with rotary embeddings and grouped-query attention: q <c>(B, H, T, d)</c>,
/// k/v <c>(B, H_kv, T, d)</c> (each shared by H/H_kv query heads inside the attention kernel), <c>o_proj</c> back to <c>(B, T, C)</c>.
/// </summary>
public sealed class LlamaAttention : nn.Module
{
    [ComponentName(Name = "q_proj")]
    public LinearLayer QProj;

    [ComponentName(Name = "k_proj")]
    public LinearLayer KProj;

    [ComponentName(Name = "v_proj")]
    public LinearLayer VProj;

    [ComponentName(Name = "o_proj")]
    public LinearLayer OProj;

    public LlamaAttention(LlamaConfig config, int layerIndex, ScalarType dtype, torch.Device? device)
        : base(nameof(LlamaAttention))
    {
        LayerIndex = layerIndex;
        NumHeads = config.NumHeads;
        NumKvHeads = config.NumKvHeads;
        HeadDim = config.HeadDim;
        SlidingWindow = config.SlidingWindow;
        QProj = new LinearLayer(config.HiddenSize, NumHeads * HeadDim, config.QkvBias, dtype, device);
        KProj = new LinearLayer(config.HiddenSize, NumKvHeads * HeadDim, config.QkvBias, dtype, device);
        VProj = new LinearLayer(config.HiddenSize, NumKvHeads * HeadDim, config.QkvBias, dtype, device);
        OProj = new LinearLayer(NumHeads * HeadDim, config.HiddenSize, config.OutputBias, dtype, device);
        RegisterComponents();
    }

    public int LayerIndex { get; }

    public int NumHeads { get; }

    public int NumKvHeads { get; }

    public int HeadDim { get; }

    public int? SlidingWindow { get; }

    /// <summary><c>x (B, T, C)</c>, cos/sin <c>(B, T, d)</c>, mask <c>(B, 1, T, T_past + T)</c> or null (causal)
    /// → <c>(B, T, C)</c>; appends this step's keys/values to <paramref name="cache"/>. With
    /// <paramref name="segments"/> (padding-free packing; no mask, no cache) attention stays within each example.</summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache, PackedSegments? segments = null)
    {
        using var scope = NewDisposeScope();
        var (b, t) = (x.shape[0], x.shape[1]);
        using var shared = SharedAdapterInput.Begin(x);                          // q, k and v read the same x
        var q = QProj.call(x).view(b, t, NumHeads, HeadDim).transpose(1, 2);   // (B, H, T, d)
        var k = KProj.call(x).view(b, t, NumKvHeads, HeadDim).transpose(1, 2); // (B, H_kv, T, d)
        var v = VProj.call(x).view(b, t, NumKvHeads, HeadDim).transpose(1, 2); // (B, H_kv, T, d)
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null)
            (k, v) = cache.Update(LayerIndex, k, v);                             // (B, H_kv, T_past + T, d)
        if (SlidingWindow is { } window && k.shape[2] > window)
        {
            throw new LoraException(
                $"sliding_window is {window} in config.json, but this pass attends over {k.shape[2]} positions: " +
                "sliding-window attention is not implemented, so sequences are limited to the window.");
        }

        var y = segments is null
            ? Attention.GroupedQuery(q, k, v, mask)                              // (B, H, T, d), k/v heads shared by groups
            : Attention.PerSegment(q, k, v, segments);
        y = y.transpose(1, 2).reshape(b, t, NumHeads * HeadDim);               // (B, T, H·d)
        return OProj.call(y).MoveToOuterDisposeScope();                          // (B, T, C)
    }
}
