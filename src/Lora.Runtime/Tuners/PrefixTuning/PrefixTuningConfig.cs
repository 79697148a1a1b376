using Lora.Peft;

namespace Lora.Tuners.PrefixTuning;

/// <summary>
/// A prefix-tuning adapter's configuration (PEFT's <c>PrefixTuningConfig</c>, <c>tuners/prefix_tuning/config.py</c>;
/// <c>peft_type: "PREFIX_TUNING"</c>): <see cref="PromptLearningConfig.NumVirtualTokens"/> learned key/value pairs
/// prepended in every decoder layer. With <see cref="PrefixProjection"/> (Li &amp; Liang's reparameterisation) they are
/// produced during training by a two-layer MLP of width <see cref="EncoderHiddenSize"/> from a smaller table; without
/// it the prefixes are learned directly: that is P-Tuning v2 (Liu et al. 2022), which PEFT runs as prefix tuning with
/// the projection off. Either way the saved file holds the prefixes themselves.
/// </summary>
public sealed record PrefixTuningConfig : PromptLearningConfig
{
    public override string PeftType => PrefixTuningMethod.PeftTypeName;

    /// <summary><c>prefix_projection</c>: learn the prefixes through the MLP <c>Linear(token_dim, encoder_hidden_size)
    /// → tanh → Linear(encoder_hidden_size, num_layers·2·token_dim)</c> (training only; PEFT's default false).</summary>
    public bool PrefixProjection { get; init; }

    /// <summary><c>encoder_hidden_size</c>: the projection's width (unset: <c>token_dim</c>, as PEFT fills it).</summary>
    public int? EncoderHiddenSize { get; init; }

    /// <summary><c>init_weights: "zero"</c>: the prefixes (or the projection's last layer) start at 0; null = random
    /// (PEFT's default: the table ~ N(0, 1)).</summary>
    public bool InitToZero { get; init; }
}
