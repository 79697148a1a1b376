using System.Diagnostics.CodeAnalysis;

namespace Lora.Models;

/// <summary>
/// <c>config.json</c> of Qwen2 / Qwen2.5 (<c>model_type</c> qwen2): Llama blocks with bias on q/k/v (not o), usually
/// tied embeddings. Sliding-window attention applies only with <c>use_sliding_window: true</c> (see
/// <see cref="LlamaConfig.SlidingWindow"/>).
/// </summary>
public sealed record Qwen2Config : LlamaConfig
{
    [SetsRequiredMembers]
    private Qwen2Config(LlamaConfig common)
        : base(common)
    {
    }

    /// <summary><c>use_sliding_window</c>.</summary>
    public bool UseSlidingWindow { get; init; }

    internal static new Qwen2Config Parse(ConfigJson json, string modelType)
    {
        if (json.OptionalBool("attention_bias") is false)
            throw json.Error("attention_bias", "is false, but Qwen2 always has q/k/v bias.");
        var common = LlamaConfig.Parse(json, modelType);
        var useSliding = json.OptionalBool("use_sliding_window") ?? false;
        return new Qwen2Config(common)
        {
            MaxPositions = json.OptionalPositive("max_position_embeddings") ?? 32768,
            QkvBias = true,
            OutputBias = false,
            MlpBias = false,
            UseSlidingWindow = useSliding,
            SlidingWindow = useSliding ? LlamaConfig.SlidingWindowField(json, absentDefault: 4096) : null,
        };
    }
}
