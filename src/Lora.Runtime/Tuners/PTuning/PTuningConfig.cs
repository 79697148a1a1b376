using Lora.Peft;

namespace Lora.Tuners.PTuning;

/// <summary>
/// A P-tuning adapter's configuration (PEFT's <c>PromptEncoderConfig</c>, <c>tuners/p_tuning/config.py</c>;
/// <c>peft_type: "P_TUNING"</c>): virtual token embeddings prepended to the input, produced during training by a
/// prompt encoder (an MLP, or an LSTM and an MLP) from a learned table (Liu et al. 2021, "GPT Understands, Too").
/// The saved file holds the encoder's output.
/// </summary>
public sealed record PTuningConfig : PromptLearningConfig
{
    public override string PeftType => PTuningMethod.PeftTypeName;

    /// <summary><c>encoder_reparameterization_type</c>.</summary>
    public PTuningEncoderType EncoderType { get; init; } = PTuningEncoderType.Mlp;

    /// <summary><c>encoder_hidden_size</c> (unset: <c>token_dim</c>, as PEFT fills it).</summary>
    public int? EncoderHiddenSize { get; init; }

    /// <summary><c>encoder_num_layers</c>: LSTM layers (the MLP always has PEFT's fixed 3 linear layers; another value
    /// is ignored with a warning there, an error here).</summary>
    public int EncoderNumLayers { get; init; } = 2;

    /// <summary><c>encoder_dropout</c>: dropout between LSTM layers.</summary>
    public double EncoderDropout { get; init; }
}
