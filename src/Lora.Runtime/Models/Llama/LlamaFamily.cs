namespace Lora.Models;

/// <summary>The Llama family (Llama 2/3/3.x, CodeLlama, TinyLlama; Mistral has the same blocks).</summary>
public static class LlamaFamily
{
    public static ModelFamily Description { get; } = new(
        ["llama", "mistral"],
        typeof(LlamaForCausalLM),
        (json, modelType) => LlamaConfig.Parse(json, modelType),
        (config, dtype, device) => new LlamaForCausalLM((LlamaConfig)config, dtype, device))
    {
        DecoderLayers = "model.layers",
        FinalNormParameters = ["model.norm.weight"],
        DefaultTargetModules = new Dictionary<string, IReadOnlyList<string>>
        {
            ["LORA"] = ["q_proj", "v_proj"],
            ["IA3"] = ["k_proj", "v_proj", "down_proj"],
        },
        DefaultIa3FeedForwardModules = ["down_proj"],
    };
}
