using Lora.Tuners.PromptTuning;

namespace Lora;

/// <summary>
/// Declares a prompt-tuning plan (PEFT's <c>PromptTuningConfig</c>): <see cref="PromptPlanAttribute.VirtualTokens"/>
/// learned embeddings before the input, random or started from the embeddings of <see cref="InitText"/>.
/// <code>
/// [PromptTuning(VirtualTokens = 8, InitText = "Classify the sentiment:")]
/// public partial class LlamaPrompt : LlamaForCausalLM { }
/// </code>
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class PromptTuningAttribute : PromptPlanAttribute
{
    /// <summary>The metadata name the generator and analyzers look the attribute up by.</summary>
    public const string MetadataName = "Lora.PromptTuningAttribute";

    /// <summary>PEFT <c>prompt_tuning_init_text</c>: start from this text's token embeddings (then
    /// <see cref="Init"/> is <see cref="PromptTuningInit.Text"/>); not empty (LORA0021).</summary>
    public string? InitText { get; set; }

    /// <summary>PEFT <c>prompt_tuning_init</c> when <see cref="InitText"/> is not set: random (default) or sampled
    /// vocabulary embeddings.</summary>
    public PromptTuningInit Init { get; set; } = PromptTuningInit.Random;

    /// <summary>PEFT <c>tokenizer_name_or_path</c> for <see cref="InitText"/>; null: the model's directory.</summary>
    public string? TokenizerPath { get; set; }

    public override PromptTuningConfig ToConfig() => new()
    {
        NumVirtualTokens = VirtualTokens,
        PromptTuningInit = InitText is not null ? PromptTuningInit.Text : Init,
        PromptTuningInitText = InitText,
        TokenizerNameOrPath = TokenizerPath,
    };
}
