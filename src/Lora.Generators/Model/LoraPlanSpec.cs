using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>
/// One <c>[Lora]</c> attribute, validated and resolved. Numbers are kept as C# literal text so the model stays
/// strings/ints only. <see cref="LeafNames"/> is set when the resolved set is exactly "every adaptable layer with
/// these leaf names" (then PEFT's <c>target_modules</c> is that list); otherwise it is empty and the saved config
/// lists the resolved full paths.
/// </summary>
internal sealed record LoraPlanSpec(
    string AdapterName,
    int R,
    string AlphaLiteral,
    string DropoutLiteral,
    string BiasMember,
    bool UseRsLora,
    bool UseDora,
    string InitMember,
    string Pattern,
    EquatableArray<string> ModulesToSave,
    bool HasLayersToTransform,
    EquatableArray<int> LayersToTransform,
    EquatableArray<LoraTargetSpec> Targets,
    EquatableArray<string> LeafNames);
