namespace Lora.Models;

/// <summary>
/// The architecture-independent part of a Hugging Face <c>config.json</c>; each architecture's config derives from it.
/// </summary>
public abstract record ModelConfig
{
    /// <summary><c>model_type</c>: llama, mistral, qwen2, gpt2.</summary>
    public required string ModelType { get; init; }

    public required int VocabSize { get; init; }

    public required int HiddenSize { get; init; }

    public required int NumLayers { get; init; }

    public required int NumHeads { get; init; }

    public required int NumKvHeads { get; init; }

    public required int HeadDim { get; init; }

    public required int MaxPositions { get; init; }

    public required bool TieWordEmbeddings { get; init; }

    public int? BosTokenId { get; init; }

    /// <summary><c>eos_token_id</c> (an int or a list in config.json).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public int? PadTokenId { get; init; }

    /// <summary><c>initializer_range</c>: the std of the normal init of linear and embedding weights.</summary>
    public double InitializerRange { get; init; } = 0.02;

    /// <summary>The <c>config.json</c> this was read from, for error messages (null when built in code).</summary>
    public string? Source { get; init; }
}
