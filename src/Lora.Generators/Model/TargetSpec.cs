using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>
/// A resolved target field: the steps from the model root, the path template with list indices as <c>{0}</c>,
/// <c>{1}</c>..., whether the match depends on an index (<see cref="RuntimeCheck"/>: the emitted code checks the path
/// with the plan's regex), and which index is PEFT's layer index (-1: none).
/// </summary>
internal sealed record TargetSpec(
    string PathTemplate,
    EquatableArray<AccessStep> Steps,
    bool RuntimeCheck,
    int LayerOrdinal);
