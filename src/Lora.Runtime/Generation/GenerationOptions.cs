namespace Lora.Generation;

/// <summary>Decoding settings, named and defaulted as in transformers' <c>GenerationConfig</c>.</summary>
public sealed record GenerationOptions
{
    /// <summary>Tokens to generate at most per sequence.</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>False: greedy (argmax). True: sample from the processed distribution.</summary>
    public bool DoSample { get; init; }

    /// <summary>Divides the logits before sampling; must be &gt; 0.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of tokens whose probability reaches p (1 = off).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>CTRL-style penalty on tokens already present (prompt and generated): positive logits are divided by
    /// it, negative ones multiplied (1 = off).</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Token ids that end a sequence (typically eos); the stop token is included in the output.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Seed for sampling; null = nondeterministic.</summary>
    public long? Seed { get; init; }

    /// <summary>transformers' <c>use_cache</c>: keep past keys and values and feed one token per step (true), or
    /// run every step over the whole sequence so far (false: slower, the same tokens; a check on the cache).</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>Checks the settings; the message names the offending field.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 0)
            throw new LoraException($"max_new_tokens must be >= 0 (got {MaxNewTokens}).");
        if (Temperature <= 0 || double.IsNaN(Temperature))
            throw new LoraException($"temperature must be > 0 (got {Temperature}); use greedy decoding for deterministic output.");
        if (TopK < 0)
            throw new LoraException($"top_k must be >= 0 (got {TopK}).");
        if (TopP is <= 0 or > 1 || double.IsNaN(TopP))
            throw new LoraException($"top_p must be in (0, 1] (got {TopP}).");
        if (RepetitionPenalty <= 0 || double.IsNaN(RepetitionPenalty))
            throw new LoraException($"repetition_penalty must be > 0 (got {RepetitionPenalty}).");
    }
}
