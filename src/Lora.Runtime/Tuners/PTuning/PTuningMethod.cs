using System.Text.Json.Nodes;
using Lora.Models;
using Lora.Peft;

namespace Lora.Tuners.PTuning;

/// <summary>
/// P-tuning (PEFT <c>peft_type: "P_TUNING"</c>, <c>tuners/p_tuning/</c>): a <see cref="PTuningEncoder"/> whose output
/// is prepended to the input embeddings; <c>encoder_hidden_size</c> defaults to <c>token_dim</c> (the hidden size).
/// </summary>
public sealed class PTuningMethod : PromptLearningMethod<PTuningConfig>
{
    public const string PeftTypeName = "P_TUNING";

    private PTuningMethod()
    {
    }

    public static PTuningMethod Instance { get; } = new();

    public override string PeftType => PeftTypeName;

    public override string DisplayName => "P-tuning";

    protected override PTuningConfig ReadOwn(PeftConfigFields fields) => new()
    {
        EncoderType = fields.String("encoder_reparameterization_type") switch
        {
            null or "MLP" => PTuningEncoderType.Mlp,
            "LSTM" => PTuningEncoderType.Lstm,
            var other => throw fields.Error("encoder_reparameterization_type", $"is \"{other}\"; expected MLP or LSTM."),
        },
        EncoderHiddenSize = fields.Int("encoder_hidden_size"),
        EncoderNumLayers = fields.Int("encoder_num_layers") ?? 2,
        EncoderDropout = fields.Double("encoder_dropout") ?? 0,
    };

    protected override void WriteOwn(PTuningConfig config, IDictionary<string, JsonNode?> fields)
    {
        fields["encoder_reparameterization_type"] = config.EncoderType == PTuningEncoderType.Lstm ? "LSTM" : "MLP";
        fields["encoder_hidden_size"] = config.EncoderHiddenSize ?? config.TokenDim;
        fields["encoder_num_layers"] = config.EncoderNumLayers;
        fields["encoder_dropout"] = config.EncoderDropout;
    }

    protected override IEnumerable<string> OwnDifferences(PTuningConfig file, PTuningConfig plan)
    {
        if (file.EncoderType != plan.EncoderType)
            yield return $"encoder_reparameterization_type = {file.EncoderType} (plan: {plan.EncoderType})";
        if (plan.EncoderHiddenSize is { } hidden && file.EncoderHiddenSize != hidden)
            yield return $"encoder_hidden_size = {file.EncoderHiddenSize} (plan: {hidden})";
    }

    protected override PTuningConfig PrepareOwn(CausalLM model, PTuningConfig config)
    {
        if (config.EncoderHiddenSize is <= 0)
            throw new LoraException($"P-tuning: encoder_hidden_size must be > 0 (got {config.EncoderHiddenSize}).");
        if (config.EncoderNumLayers <= 0)
            throw new LoraException($"P-tuning: encoder_num_layers must be > 0 (got {config.EncoderNumLayers}).");
        if (config.EncoderType == PTuningEncoderType.Mlp && config.EncoderNumLayers != 2 && !config.InferenceMode)
            throw new LoraException($"P-tuning: encoder_num_layers is {config.EncoderNumLayers}, but the MLP prompt encoder always has PEFT's fixed layers (only the LSTM has a number of layers); leave it at 2.");
        if (config.EncoderDropout is < 0 or >= 1)
            throw new LoraException($"P-tuning: encoder_dropout must be in [0, 1) (got {config.EncoderDropout}).");
        return config with { EncoderHiddenSize = config.EncoderHiddenSize ?? config.TokenDim };
    }

    protected override PromptEncoder CreateEncoder(CausalLM model, PTuningConfig config) =>
        new PTuningEncoder(config.NumVirtualTokens, config.TokenDim!.Value, config.InferenceMode ? null : config.EncoderType,
            config.EncoderHiddenSize!.Value, config.EncoderNumLayers, config.EncoderDropout, model.parameters().First().device);
}
