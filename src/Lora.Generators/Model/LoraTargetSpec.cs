using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>
/// A resolved adaptable field: the steps from the model root, the path template with list indices as
/// <c>{0}</c>, <c>{1}</c>..., whether the match depends on an index (<see cref="RuntimeCheck"/>: the emitted code
/// checks the path with the plan's regex), which index is PEFT's layer index (-1: none), and the layer kind
/// (<see cref="IsConv1D"/>: GPT-2's fan_in_fan_out linear; <see cref="IsEmbedding"/>: an <c>EmbeddingLayer</c>).
/// </summary>
internal sealed record LoraTargetSpec(
    string PathTemplate,
    EquatableArray<AccessStep> Steps,
    bool RuntimeCheck,
    int LayerOrdinal,
    bool IsConv1D,
    bool IsEmbedding);
