namespace Lora.Tuners.PromptTuning;

/// <summary>How new prompt-tuning virtual tokens start (PEFT's <c>PromptTuningInit</c>).</summary>
public enum PromptTuningInit
{
    /// <summary><c>RANDOM</c>: N(0, 1), the embedding table's default (PEFT's default).</summary>
    Random,

    /// <summary><c>TEXT</c>: the word embeddings of <c>prompt_tuning_init_text</c>'s tokens, cut or repeated to the
    /// number of virtual tokens.</summary>
    Text,

    /// <summary><c>SAMPLE_VOCAB</c>: the word embeddings of tokens drawn uniformly from the vocabulary.</summary>
    SampleVocab,
}
