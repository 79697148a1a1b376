namespace Lora.Peft;

/// <summary>Names of the files a prompt-learning adapter directory holds besides PEFT's.</summary>
public static class PromptLearningFiles
{
    /// <summary>
    /// <c>prompt_encoder.safetensors</c>: the whole encoder (its virtual token table and its reparameterisation:
    /// prefix tuning's projection, P-tuning's MLP/LSTM) under its own parameter names (<c>embedding.weight</c>,
    /// <c>transform.0.weight</c>, <c>mlp_head.0.weight</c>, …), written beside <c>adapter_model.safetensors</c> while a
    /// reparameterisation exists, so training can resume exactly. PEFT saves only the encoder's output
    /// (<c>prompt_embeddings</c>) and ignores this file.
    /// </summary>
    public const string EncoderStateFileName = "prompt_encoder.safetensors";

    /// <summary>PEFT's key of the saved prompt embeddings (<c>BasePromptEncoder._get_adapter_state_dict</c>).</summary>
    public const string PromptEmbeddingsKey = "prompt_embeddings";
}
