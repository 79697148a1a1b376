using Lora.Generation;
using Lora.Models;

namespace Lora.Training.Objectives.Rollout;

/// <summary>The generation phase's sampling: <see cref="TokenGenerator"/> over chunks of prompts, each chunk with
/// its own seed derived from the rollout's, so a rollout depends only on the weights and its seed.</summary>
internal static class Sampling
{
    public static List<GeneratedSequence> Sample(CausalLM model, IReadOnlyList<int[]> prompts, GenerationOptions options, int padTokenId, long seed, int chunk = 64)
    {
        var result = new List<GeneratedSequence>(prompts.Count);
        var part = 0;
        foreach (var group in prompts.Chunk(chunk))
        {
            result.AddRange(TokenGenerator.Generate(model, group.Select(p => (IReadOnlyList<int>)p).ToList(), options with { Seed = seed + part }, padTokenId));
            part++;
        }

        return result;
    }
}
