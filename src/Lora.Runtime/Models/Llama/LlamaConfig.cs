namespace Lora.Models;

/// <summary>
/// <c>config.json</c> of the Llama family: Llama 2/3/3.x (incl. llama3 rope scaling), CodeLlama, TinyLlama
/// (<c>model_type</c> llama) and Mistral (<c>model_type</c> mistral, same blocks). <see cref="Qwen2Config"/> derives
/// from it.
/// </summary>
public record LlamaConfig : ModelConfig
{
    /// <summary><c>intermediate_size</c>: width of the SwiGLU MLP.</summary>
    public required int IntermediateSize { get; init; }

    /// <summary><c>rms_norm_eps</c>.</summary>
    public required double RmsNormEps { get; init; }

    public required RopeConfig Rope { get; init; }

    /// <summary>Bias on q/k/v projections (<c>attention_bias</c>; always true for Qwen2).</summary>
    public required bool QkvBias { get; init; }

    /// <summary>Bias on o_proj (<c>attention_bias</c>; false for Qwen2).</summary>
    public required bool OutputBias { get; init; }

    /// <summary><c>mlp_bias</c>: bias on gate/up/down projections.</summary>
    public bool MlpBias { get; init; }

    /// <summary>
    /// <c>sliding_window</c> (Mistral; Qwen2 with <c>use_sliding_window</c>), or null. A forward pass over more
    /// positions than the window is refused (no sliding-window mask is implemented); up to the window, full causal
    /// attention is exactly what the sliding window computes.
    /// </summary>
    public int? SlidingWindow { get; init; }

    internal static LlamaConfig Parse(ConfigJson json, string modelType)
    {
        var mistral = modelType == "mistral";
        var hidden = json.RequiredPositive("hidden_size");
        var heads = json.RequiredPositive("num_attention_heads");
        var kvHeads = json.OptionalPositive("num_key_value_heads") ?? heads;
        if (heads % kvHeads != 0)
            throw json.Error("num_key_value_heads", $"({kvHeads}) must divide num_attention_heads ({heads}).");
        var headDim = json.OptionalPositive("head_dim") ?? DeriveHeadDim(json, hidden, heads);

        var act = json.OptionalString("hidden_act") ?? "silu";
        if (act != "silu")
            throw json.Error("hidden_act", $"is '{act}': only 'silu' is supported for {modelType}.");
        var attentionBias = json.OptionalBool("attention_bias") ?? false;

        return new LlamaConfig
        {
            ModelType = modelType,
            VocabSize = json.RequiredPositive("vocab_size"),
            HiddenSize = hidden,
            NumLayers = json.RequiredPositive("num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            MaxPositions = json.OptionalPositive("max_position_embeddings") ?? (mistral ? 4096 * 32 : 2048),
            TieWordEmbeddings = json.OptionalBool("tie_word_embeddings") ?? false,
            BosTokenId = json.OptionalInt("bos_token_id"),
            EosTokenIds = json.IntOrList("eos_token_id"),
            PadTokenId = json.OptionalInt("pad_token_id"),
            InitializerRange = json.OptionalDouble("initializer_range") ?? 0.02,
            Source = json.Path,
            IntermediateSize = json.RequiredPositive("intermediate_size"),
            RmsNormEps = json.OptionalDouble("rms_norm_eps") ?? 1e-6,
            Rope = RopeConfig.Parse(json, defaultTheta: 10000.0),
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            MlpBias = json.OptionalBool("mlp_bias") ?? false,
            // transformers' MistralConfig defaults sliding_window to 4096 when the field is absent (not when null).
            SlidingWindow = mistral ? SlidingWindowField(json, absentDefault: 4096) : null,
        };
    }

    internal static int DeriveHeadDim(ConfigJson json, int hidden, int heads) =>
        hidden % heads == 0
            ? hidden / heads
            : throw json.Error("num_attention_heads", $"({heads}) must divide hidden_size ({hidden}) when head_dim is not given.");

    internal static int? SlidingWindowField(ConfigJson json, int absentDefault) =>
        json.Names.Contains("sliding_window") ? json.OptionalPositive("sliding_window") : absentDefault;
}
