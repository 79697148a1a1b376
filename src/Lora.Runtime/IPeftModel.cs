using Lora.Peft;

namespace Lora;

/// <summary>
/// A model class whose adapters are declared by plan attributes (<c>[Lora]</c>, <c>[IA3]</c>) and resolved at build
/// time: the source generator implements this on the <c>partial</c> class with what only build-time resolution gives
/// (the plans, the typed target list, injection into exactly those layers); everything else is runtime API over it
/// (<see cref="PeftModelPlans"/>: save, load, the saved config, training, marking what trains).
/// </summary>
public interface IPeftModel
{
    /// <summary>The declared adapters, in declaration order.</summary>
    IReadOnlyList<AdapterPlan> AdapterPlans { get; }

    /// <summary>The layers the plan of <paramref name="adapterName"/> targets (null: every declared adapter's), with
    /// their paths (= Hugging Face keys), ordinal by path: typed field accesses resolved at build time.</summary>
    IReadOnlyList<(string Path, IAdapterHost Layer)> AdapterTargets(string? adapterName = null);

    /// <summary>Adds the declared adapter(s) to exactly their targets: null adds every declared adapter; a declared
    /// name adds that one; with a single plan, any other name adds the plan under that name. Returns the adapted
    /// paths.</summary>
    IReadOnlyList<string> InjectAdapters(string? adapterName = null);
}

/// <summary>One declared adapter: its name and its plan as a PEFT config (the attribute's <c>ToConfig()</c>).</summary>
public sealed record AdapterPlan(string AdapterName, PeftConfig Config);
