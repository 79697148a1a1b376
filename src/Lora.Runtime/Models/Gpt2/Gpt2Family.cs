namespace Lora.Models;

/// <summary>GPT-2: learned positions, LayerNorm, <c>Conv1D</c> projections (weights stored <c>(in, out)</c>).</summary>
public static class Gpt2Family
{
    public static ModelFamily Description { get; } = new(
        ["gpt2"],
        typeof(Gpt2LMHeadModel),
        (json, modelType) => Gpt2Config.Parse(json, modelType),
        (config, dtype, device) => new Gpt2LMHeadModel((Gpt2Config)config, dtype, device))
    {
        DecoderLayers = "transformer.h",
        FinalNormParameters = ["transformer.ln_f.weight", "transformer.ln_f.bias"],
        DefaultTargetModules = new Dictionary<string, IReadOnlyList<string>>
        {
            ["LORA"] = ["c_attn"],
            ["IA3"] = ["c_attn", "mlp.c_proj"],
        },
        DefaultIa3FeedForwardModules = ["mlp.c_proj"],
    };
}
