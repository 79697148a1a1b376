using Lora.Peft;

namespace Lora;

/// <summary>
/// What every attribute declaring a layer-adapting plan on a model class has (<see cref="LoraAttribute"/>,
/// <see cref="IA3Attribute"/>, <see cref="BottleneckAdapterAttribute"/>): the layers to adapt, the adapter's name, and
/// the modules trained in full. Put one on a
/// <c>partial</c> class deriving from a model; the Lora source generator resolves <see cref="Targets"/> against the
/// base type's module tree at build time (a wrong target is a build error), emits typed injection and the state-dict
/// map, and makes the class an <see cref="IPeftModel"/> (docs/generator.md).
/// </summary>
public abstract class AdapterPlanAttribute : PeftPlanAttribute
{
    /// <summary>
    /// A .NET regular expression selecting the layers to adapt. It must fully match (<c>^(?:…)$</c>) either a
    /// module's leaf (Hugging Face) name, e.g. <c>"q_proj|v_proj"</c>, or its full dotted path, e.g.
    /// <c>@"model\.layers\.0\.self_attn\.q_proj"</c>; indices of a <c>ModuleList</c> appear in paths as numbers.
    /// Which layers can be targets depends on the method (<see cref="AdaptsAttribute"/>).
    /// </summary>
    public string? Targets { get; set; }

    /// <summary>Modules trained in full and saved with the adapter (PEFT <c>modules_to_save</c>), e.g.
    /// <c>["lm_head"]</c>; an element may also be a <c>'|'</c>-separated list. They are never targets.</summary>
    public string[]? ModulesToSave { get; set; }

    /// <summary><see cref="Targets"/> as a config's target modules.</summary>
    protected TargetModules? TargetModulesOf(string? pattern) => pattern is null ? null : TargetModules.FromLeafOrPathRegex(pattern);

    /// <summary><see cref="ModulesToSave"/> split and trimmed (null when empty).</summary>
    protected IReadOnlyList<string>? ModulesToSaveList()
    {
        var names = (ModulesToSave ?? []).SelectMany(s => (s ?? string.Empty).Split('|')).Select(s => s.Trim()).Where(s => s.Length > 0).ToList();
        return names.Count == 0 ? null : names;
    }
}

/// <summary>
/// Which kinds of layer a plan attribute's method can adapt, for the source generator's build-time check (LORA0002):
/// the adapter kinds it provides (<see cref="LinearAdapter"/>, <see cref="EmbeddingAdapter"/>). A layer whose host
/// kind is not listed cannot be a target. The first kind is the one messages list ("adaptable layers: …").
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class AdaptsAttribute(params Type[] adapterKinds) : Attribute
{
    public IReadOnlyList<Type> AdapterKinds { get; } = adapterKinds;
}
