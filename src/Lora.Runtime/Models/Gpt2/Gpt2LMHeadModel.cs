using Lora.Quantization;
using System.Text.RegularExpressions;
using Lora.Modules;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// GPT-2 causal LM: <c>transformer.*</c> and <c>lm_head</c>, tied to <c>transformer.wte.weight</c> (checkpoints
/// usually omit <c>lm_head.weight</c>). Linear maps are <see cref="Conv1D"/> (weights stored <c>(in, out)</c>).
/// </summary>
public partial class Gpt2LMHeadModel : CausalLM
{
    [ComponentName(Name = "transformer")]
    public Gpt2Model Transformer;

    [ComponentName(Name = "lm_head")]
    public LinearLayer LmHead;

    /// <summary>A model with uninitialised weights, in eval mode (dropouts inactive).</summary>
    public Gpt2LMHeadModel(Gpt2Config config, ScalarType dtype = ScalarType.Float32, torch.Device? device = null)
        : base(nameof(Gpt2LMHeadModel))
    {
        Config = config;
        Transformer = new Gpt2Model(config, dtype, device);
        LmHead = config.TieWordEmbeddings
            ? new LinearLayer(Transformer.Wte.Weight)
            : new LinearLayer(config.HiddenSize, config.VocabSize, hasBias: false, dtype, device);
        RegisterComponents();
        eval();
    }

    public override Gpt2Config Config { get; }

    public override bool GradientCheckpointing
    {
        get => Transformer.GradientCheckpointing;
        set => Transformer.GradientCheckpointing = value;
    }

    /// <summary>Loads a GPT-2 checkpoint directory; see <see cref="CausalLM.FromPretrained"/>.</summary>
    public static new Gpt2LMHeadModel FromPretrained(string directory, ScalarType dtype = ScalarType.Float32, torch.Device? device = null, QuantizationConfig? quantization = null) =>
        FromPretrained<Gpt2LMHeadModel>(directory, dtype, device, quantization);

    protected internal override Tensor Decode(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var hidden = Transformer.Forward(inputIds, inputsEmbeds, attentionMask, positionIds, cache); // (B, T, C)
        return LmHead.call(KeptPositions(hidden)).MoveToOuterDisposeScope();                                        // (B, T or logits_to_keep, vocab)
    }

    public override Tensor HiddenStates(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null)
    {
        CheckInputs(inputIds, null);
        return Transformer.Forward(inputIds, attentionMask, positionIds, null); // (B, T, C)
    }

    public override nn.Module OutputHead => LmHead;

    public override EmbeddingLayer InputEmbedding => Transformer.Wte;

    protected override string BaseModelPrefix => "transformer";

    /// <summary>The causal-mask buffers older transformers versions saved with each attention block.</summary>
    protected override bool IsKnownBuffer(string key) => KnownBuffer().IsMatch(key);

    [GeneratedRegex(@"^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex KnownBuffer();
}
