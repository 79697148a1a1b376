using Lora.Tuners.PrefixTuning;

namespace Lora;

/// <summary>
/// Declares a prefix-tuning plan (PEFT's <c>PrefixTuningConfig</c>): <see cref="PromptPlanAttribute.VirtualTokens"/>
/// learned key/value prefixes in every layer. With <see cref="Projection"/> they are learned through PEFT's
/// reparameterisation MLP (Li &amp; Liang's prefix tuning); without it (the default, as in PEFT) this is P-Tuning v2.
/// <code>
/// [PrefixTuning(VirtualTokens = 20, Projection = true, EncoderHiddenSize = 512)]
/// public partial class LlamaPrefix : LlamaForCausalLM { }
/// </code>
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class PrefixTuningAttribute : PromptPlanAttribute
{
    /// <summary>The metadata name the generator and analyzers look the attribute up by.</summary>
    public const string MetadataName = "Lora.PrefixTuningAttribute";

    /// <summary>PEFT <c>prefix_projection</c>: learn the prefixes through an MLP (training only; saved files hold the
    /// prefixes).</summary>
    public bool Projection { get; set; }

    /// <summary>PEFT <c>encoder_hidden_size</c> of the projection; 0 = <c>token_dim</c> (PEFT's default). Must not be
    /// negative (LORA0021).</summary>
    public int EncoderHiddenSize { get; set; }

    /// <summary>PEFT <c>init_weights: "zero"</c>: the prefixes start at 0.</summary>
    public bool InitToZero { get; set; }

    public override PrefixTuningConfig ToConfig() => new()
    {
        NumVirtualTokens = VirtualTokens,
        PrefixProjection = Projection,
        EncoderHiddenSize = EncoderHiddenSize > 0 ? EncoderHiddenSize : null,
        InitToZero = InitToZero,
    };
}
