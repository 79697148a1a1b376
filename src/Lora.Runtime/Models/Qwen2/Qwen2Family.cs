namespace Lora.Models;

/// <summary>Qwen2 / Qwen2.5: Llama blocks with q/k/v bias.</summary>
public static class Qwen2Family
{
    public static ModelFamily Description { get; } = new(
        ["qwen2"],
        typeof(Qwen2ForCausalLM),
        (json, modelType) => Qwen2Config.Parse(json, modelType),
        (config, dtype, device) => new Qwen2ForCausalLM((Qwen2Config)config, dtype, device))
    {
        DecoderLayers = "model.layers",
        FinalNormParameters = ["model.norm.weight"],
        DefaultTargetModules = new Dictionary<string, IReadOnlyList<string>>
        {
            ["LORA"] = ["q_proj", "v_proj"],
            ["IA3"] = ["q_proj", "v_proj", "down_proj"],
        },
        DefaultIa3FeedForwardModules = ["down_proj"],
    };
}
