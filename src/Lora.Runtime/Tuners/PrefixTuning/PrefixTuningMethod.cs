using System.Text.Json.Nodes;
using Lora.Models;
using Lora.Peft;

namespace Lora.Tuners.PrefixTuning;

/// <summary>
/// Prefix tuning and P-Tuning v2 (PEFT <c>peft_type: "PREFIX_TUNING"</c>, <c>tuners/prefix_tuning/</c>): a
/// <see cref="PrefixEncoder"/> whose key/value prefixes enter every layer's attention through the KV cache. Its
/// <c>token_dim</c> and <c>num_attention_heads</c> are the model's key/value width and heads (PEFT's
/// <c>_prepare_prompt_learning_config</c> for models with <c>num_key_value_heads</c>; for GPT-2 they are the hidden
/// size and heads, the same thing), <c>encoder_hidden_size</c> defaults to <c>token_dim</c>.
/// </summary>
public sealed class PrefixTuningMethod : PromptLearningMethod<PrefixTuningConfig>
{
    public const string PeftTypeName = "PREFIX_TUNING";

    private PrefixTuningMethod()
    {
    }

    public static PrefixTuningMethod Instance { get; } = new();

    public override string PeftType => PeftTypeName;

    public override string DisplayName => "prefix tuning";

    protected override PrefixTuningConfig ReadOwn(PeftConfigFields fields) => new()
    {
        PrefixProjection = fields.Bool("prefix_projection") ?? false,
        EncoderHiddenSize = fields.Int("encoder_hidden_size"),
        InitToZero = fields.String("init_weights") switch
        {
            null => false,
            "zero" => true,
            var other => throw fields.Error("init_weights", $"is \"{other}\"; expected null or \"zero\"."),
        },
    };

    protected override void WriteOwn(PrefixTuningConfig config, IDictionary<string, JsonNode?> fields)
    {
        fields["prefix_projection"] = config.PrefixProjection;
        fields["encoder_hidden_size"] = config.EncoderHiddenSize ?? config.TokenDim;
        fields["init_weights"] = config.InitToZero ? "zero" : null;
    }

    protected override IEnumerable<string> OwnDifferences(PrefixTuningConfig file, PrefixTuningConfig plan)
    {
        if (file.PrefixProjection != plan.PrefixProjection)
            yield return $"prefix_projection = {file.PrefixProjection} (plan: {plan.PrefixProjection})";
        else if (plan.PrefixProjection && plan.EncoderHiddenSize is { } hidden && file.EncoderHiddenSize != hidden)
            yield return $"encoder_hidden_size = {file.EncoderHiddenSize} (plan: {hidden})";
    }

    protected override (int TokenDim, int Heads) Dimensions(ModelConfig model) => (model.NumKvHeads * model.HeadDim, model.NumKvHeads);

    protected override PrefixTuningConfig PrepareOwn(CausalLM model, PrefixTuningConfig config)
    {
        if (config.EncoderHiddenSize is <= 0)
            throw new LoraException($"prefix tuning: encoder_hidden_size must be > 0 (got {config.EncoderHiddenSize}).");
        return config with { EncoderHiddenSize = config.EncoderHiddenSize ?? config.TokenDim };
    }

    protected override PromptEncoder CreateEncoder(CausalLM model, PrefixTuningConfig config) =>
        new PrefixEncoder(config.NumVirtualTokens, config.NumLayers!.Value, config.NumAttentionHeads!.Value, config.TokenDim!.Value,
            config.PrefixProjection && !config.InferenceMode, config.EncoderHiddenSize!.Value, config.InitToZero, model.parameters().First().device);
}
