using Lora.Peft;

namespace Lora.Tuners.PromptTuning;

/// <summary>
/// A prompt-tuning adapter's configuration (PEFT's <c>PromptTuningConfig</c>, <c>tuners/prompt_tuning/config.py</c>;
/// <c>peft_type: "PROMPT_TUNING"</c>): <see cref="PromptLearningConfig.NumVirtualTokens"/> learned embeddings
/// prepended to the input (Lester et al. 2021), started at random or from the embeddings of a text.
/// </summary>
public sealed record PromptTuningConfig : PromptLearningConfig
{
    public override string PeftType => PromptTuningMethod.PeftTypeName;

    /// <summary><c>prompt_tuning_init</c>.</summary>
    public PromptTuningInit PromptTuningInit { get; init; } = PromptTuningInit.Random;

    /// <summary><c>prompt_tuning_init_text</c>: the text whose token embeddings start the virtual tokens
    /// (<see cref="PromptTuningInit.Text"/>).</summary>
    public string? PromptTuningInitText { get; init; }

    /// <summary><c>tokenizer_name_or_path</c>: the tokenizer directory for the text (unset: the model's own directory,
    /// where its <c>config.json</c> was read; PEFT requires it to be set).</summary>
    public string? TokenizerNameOrPath { get; init; }
}
