namespace Lora.Peft;

/// <summary>
/// What every prompt-learning method's configuration has (PEFT's <c>PromptLearningConfig</c>,
/// <c>src/peft/config.py</c>): how many virtual tokens, and the model dimensions they are built for. The dimensions
/// are usually left unset and filled from the model when the adapter is added, as PEFT's
/// <c>_prepare_prompt_learning_config</c> (<c>utils/other.py</c>) does; a saved <c>adapter_config.json</c> carries
/// them, and loading checks them against the model.
/// </summary>
public abstract record PromptLearningConfig : PeftConfig
{
    /// <summary><c>num_virtual_tokens</c>: virtual positions before the input (or key/value prefix length).</summary>
    public int NumVirtualTokens { get; init; } = 20;

    /// <summary><c>token_dim</c>: the width of one virtual token (the hidden size; for prefix tuning on a
    /// grouped-query model the key/value width <c>num_key_value_heads · head_dim</c>, PEFT #1901).</summary>
    public int? TokenDim { get; init; }

    /// <summary><c>num_transformer_submodules</c>: 1 for decoder-only models (2 is encoder-decoder, not supported).</summary>
    public int? NumTransformerSubmodules { get; init; }

    /// <summary><c>num_attention_heads</c> (for prefix tuning on a grouped-query model, the key/value heads).</summary>
    public int? NumAttentionHeads { get; init; }

    /// <summary><c>num_layers</c>: the decoder layers.</summary>
    public int? NumLayers { get; init; }

    /// <summary>PEFT's <c>inference_mode</c> for building the encoder: true builds its saved form only (a table of
    /// <c>prompt_embeddings</c>, without the reparameterisation a training run uses), as PEFT does for a loaded
    /// adapter. Saved files always say <c>inference_mode: true</c>.</summary>
    public bool InferenceMode { get; init; }
}
