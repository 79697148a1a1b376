using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>
/// One plan attribute, validated and resolved: the attribute type (the emitted plan re-creates it with the arguments
/// as written and calls its <c>ToConfig()</c>, so the generator never mirrors a method's config), the config type
/// <c>ToConfig()</c> returns, the adapter name, the Targets regex, and the typed targets. With
/// <c>LayersToTransform</c>, only targets in those layer indices are kept at run time. A <see cref="ModelLevel"/> plan
/// (prompt learning) has no layer targets: its encoder is attached to the model by the runtime's injection.
/// </summary>
internal sealed record PlanSpec(
    string AttributeType,
    string AttributeDisplay,
    string ConfigType,
    string AdapterName,
    string Pattern,
    EquatableArray<ArgumentSpec> Arguments,
    EquatableArray<TargetSpec> Targets,
    bool HasLayersToTransform,
    EquatableArray<int> LayersToTransform,
    bool ModelLevel = false);

/// <summary>A named argument of the attribute as C# text: <c>Name = literal</c>.</summary>
internal sealed record ArgumentSpec(string Name, string Literal);
