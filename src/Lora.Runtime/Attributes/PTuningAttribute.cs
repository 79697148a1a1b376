using Lora.Tuners.PTuning;

namespace Lora;

/// <summary>
/// Declares a P-tuning plan (PEFT's <c>PromptEncoderConfig</c>): <see cref="PromptPlanAttribute.VirtualTokens"/>
/// virtual token embeddings before the input, produced by a prompt encoder (an MLP, or an LSTM) while training.
/// <code>
/// [PTuning(VirtualTokens = 20, EncoderHiddenSize = 128)]
/// public partial class LlamaPTuning : LlamaForCausalLM { }
/// </code>
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class PTuningAttribute : PromptPlanAttribute
{
    /// <summary>The metadata name the generator and analyzers look the attribute up by.</summary>
    public const string MetadataName = "Lora.PTuningAttribute";

    /// <summary>PEFT <c>encoder_reparameterization_type</c>.</summary>
    public PTuningEncoderType Encoder { get; set; } = PTuningEncoderType.Mlp;

    /// <summary>PEFT <c>encoder_hidden_size</c>; 0 = <c>token_dim</c> (the hidden size). Not negative (LORA0021).</summary>
    public int EncoderHiddenSize { get; set; }

    /// <summary>PEFT <c>encoder_num_layers</c> (the LSTM's; the MLP has fixed layers, so only 2 is accepted there);
    /// positive (LORA0021).</summary>
    public int EncoderLayers { get; set; } = 2;

    /// <summary>PEFT <c>encoder_dropout</c> (between LSTM layers), in [0, 1) (LORA0021).</summary>
    public double EncoderDropout { get; set; }

    public override PTuningConfig ToConfig() => new()
    {
        NumVirtualTokens = VirtualTokens,
        EncoderType = Encoder,
        EncoderHiddenSize = EncoderHiddenSize > 0 ? EncoderHiddenSize : null,
        EncoderNumLayers = EncoderLayers,
        EncoderDropout = EncoderDropout,
    };
}
