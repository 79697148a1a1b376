using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// A decoder-only language model whose module tree mirrors the Hugging Face checkpoint: the dotted path of every
/// parameter is its key in <c>model.safetensors</c> (<c>model.layers.0.self_attn.q_proj.weight</c>,
/// <c>transformer.h.0.attn.c_attn.weight</c>, <c>lm_head.weight</c>).
/// </summary>
public abstract class CausalLM : nn.Module
{
    protected CausalLM(string name)
        : base(name)
    {
    }

    /// <summary>The parsed <c>config.json</c>.</summary>
    public abstract ModelConfig Config { get; }

    /// <summary>
    /// Logits <c>(B, T, vocab)</c> for <paramref name="inputIds"/> <c>(B, T)</c> (int64).
    /// <paramref name="attentionMask"/> <c>(B, T_past + T)</c> of 1 (attend) / 0 (padding), as in transformers;
    /// null means all ones. <paramref name="positionIds"/> <c>(B, T)</c>; null means derived from the mask
    /// (<c>cumsum(mask) - 1</c>, so left padding keeps real tokens at positions 0, 1, ...) or <c>T_past + arange(T)</c>.
    /// With <paramref name="cache"/>, attends over the cached positions too and appends the new ones.
    /// </summary>
    public abstract Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null);

    /// <summary>A cache sized for this model.</summary>
    public KvCache NewCache() => new(Config.NumLayers);
}
