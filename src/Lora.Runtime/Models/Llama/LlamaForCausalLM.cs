using Lora.Quantization;
using Lora.Modules;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Llama-family causal LM (Llama 2/3/3.x, CodeLlama, TinyLlama, Mistral): <c>model.*</c> and <c>lm_head</c>
/// (<c>(vocab, C)</c>, no bias; the embedding matrix itself when <c>tie_word_embeddings</c>).
/// </summary>
public class LlamaForCausalLM : CausalLM
{
    [ComponentName(Name = "model")]
    public LlamaModel Model;

    [ComponentName(Name = "lm_head")]
    public LinearLayer LmHead;

    /// <summary>A model with uninitialised weights, in eval mode: load them with <see cref="CausalLM.LoadWeights(string)"/>
    /// or draw them with <see cref="CausalLM.InitializeWeights"/>.</summary>
    public LlamaForCausalLM(LlamaConfig config, ScalarType dtype = ScalarType.Float32, torch.Device? device = null)
        : base(nameof(LlamaForCausalLM))
    {
        Config = config;
        Model = new LlamaModel(config, dtype, device);
        LmHead = config.TieWordEmbeddings
            ? new LinearLayer(Model.EmbedTokens.Weight)
            : new LinearLayer(config.HiddenSize, config.VocabSize, hasBias: false, dtype, device);
        RegisterComponents();
        eval();
    }

    public override LlamaConfig Config { get; }

    public override bool GradientCheckpointing
    {
        get => Model.GradientCheckpointing;
        set => Model.GradientCheckpointing = value;
    }

    /// <summary>Loads a Llama/Mistral (or Qwen2) checkpoint directory; see <see cref="CausalLM.FromPretrained"/>.</summary>
    public static new LlamaForCausalLM FromPretrained(string directory, ScalarType dtype = ScalarType.Float32, torch.Device? device = null, QuantizationConfig? quantization = null) =>
        FromPretrained<LlamaForCausalLM>(directory, dtype, device, quantization);

    protected internal override Tensor Decode(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var hidden = Model.Forward(inputIds, inputsEmbeds, attentionMask, positionIds, cache); // (B, T, C)
        return LmHead.call(KeptPositions(hidden)).MoveToOuterDisposeScope();                                  // (B, T or logits_to_keep, vocab)
    }

    public override Tensor HiddenStates(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null)
    {
        CheckInputs(inputIds, null);
        return Model.Forward(inputIds, attentionMask, positionIds, null); // (B, T, C)
    }

    public override Tensor? ForwardHidden(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null) =>
        HiddenStates(inputIds, attentionMask, positionIds);

    /// <summary>Llama, Mistral and Qwen2 run packed batches padding-free (<see cref="PackedSegments"/>).</summary>
    public override bool SupportsPaddingFree => true;

    public override nn.Module OutputHead => LmHead;

    public override EmbeddingLayer InputEmbedding => Model.EmbedTokens;

    protected override string BaseModelPrefix => "model";

    protected override bool IsKnownBuffer(string key) =>
        // Older Llama conversions saved the rotary inv_freq buffer per layer.
        key.EndsWith(".self_attn.rotary_emb.inv_freq", StringComparison.Ordinal);
}
