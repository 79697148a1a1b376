namespace Lora.Models;

/// <summary>
/// <c>config.json</c> of GPT-2 (<c>model_type</c> gpt2): <c>n_embd</c>, <c>n_head</c>, <c>n_layer</c>,
/// <c>n_positions</c>, <c>n_inner</c> (default 4·n_embd), <c>layer_norm_epsilon</c>, <c>activation_function</c>
/// (gelu_new / gelu_pytorch_tanh: tanh approximation; gelu: exact), tied <c>lm_head</c>.
/// </summary>
public sealed record Gpt2Config : ModelConfig
{
    public static readonly IReadOnlyList<string> SupportedActivations = ["gelu_new", "gelu_pytorch_tanh", "gelu"];

    /// <summary><c>n_inner</c>: MLP width.</summary>
    public required int InnerSize { get; init; }

    /// <summary><c>layer_norm_epsilon</c>.</summary>
    public required double LayerNormEps { get; init; }

    /// <summary><c>activation_function</c>.</summary>
    public required string Activation { get; init; }

    /// <summary><c>embd_pdrop</c>, <c>attn_pdrop</c>, <c>resid_pdrop</c> (active in training mode only).</summary>
    public double EmbdPdrop { get; init; } = 0.1;

    public double AttnPdrop { get; init; } = 0.1;

    public double ResidPdrop { get; init; } = 0.1;

    internal static Gpt2Config Parse(ConfigJson json, string modelType)
    {
        var hidden = json.RequiredPositive("n_embd");
        var heads = json.RequiredPositive("n_head");
        if (hidden % heads != 0)
            throw json.Error("n_head", $"({heads}) must divide n_embd ({hidden}).");
        var act = json.OptionalString("activation_function") ?? "gelu_new";
        if (!SupportedActivations.Contains(act))
            throw json.Error("activation_function", $"is '{act}': supported are {string.Join(", ", SupportedActivations)}.");
        if (json.OptionalBool("scale_attn_weights") is false)
            throw json.Error("scale_attn_weights", "is false: only scaled attention (1/sqrt(head_dim)) is supported.");
        if (json.OptionalBool("scale_attn_by_inverse_layer_idx") is true)
            throw json.Error("scale_attn_by_inverse_layer_idx", "is true: not supported.");
        if (json.OptionalBool("add_cross_attention") is true)
            throw json.Error("add_cross_attention", "is true: cross-attention (encoder-decoder GPT-2) is not supported.");

        return new Gpt2Config
        {
            ModelType = modelType,
            VocabSize = json.RequiredPositive("vocab_size"),
            HiddenSize = hidden,
            NumLayers = json.RequiredPositive("n_layer"),
            NumHeads = heads,
            NumKvHeads = heads,
            HeadDim = hidden / heads,
            MaxPositions = json.RequiredPositive("n_positions"),
            TieWordEmbeddings = json.OptionalBool("tie_word_embeddings") ?? true,
            BosTokenId = json.OptionalInt("bos_token_id"),
            EosTokenIds = json.IntOrList("eos_token_id"),
            PadTokenId = json.OptionalInt("pad_token_id"),
            InitializerRange = json.OptionalDouble("initializer_range") ?? 0.02,
            Source = json.Path,
            InnerSize = json.OptionalPositive("n_inner") ?? 4 * hidden,
            LayerNormEps = json.OptionalDouble("layer_norm_epsilon") ?? 1e-5,
            Activation = act,
            EmbdPdrop = json.OptionalDouble("embd_pdrop") ?? 0.1,
            AttnPdrop = json.OptionalDouble("attn_pdrop") ?? 0.1,
            ResidPdrop = json.OptionalDouble("resid_pdrop") ?? 0.1,
        };
    }
}
