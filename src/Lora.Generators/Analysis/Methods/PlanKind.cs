using System.Collections.Generic;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Analysis.Methods;

/// <summary>
/// What the generator knows of one PEFT method's plan attribute beyond the shared rules (targets, adapter name,
/// modules to save, which layers it can adapt — the attribute's <c>[Adapts]</c>): its metadata name, how it is
/// written in messages, and its own build-time rules. One class per method, listed in <see cref="PlanKinds.All"/>;
/// everything else about the method (its config, its math) lives in the runtime, reached through the attribute's
/// <c>ToConfig()</c>.
/// </summary>
internal abstract class PlanKind
{
    /// <summary>The attribute's metadata name (<c>Lora.LoraAttribute</c>).</summary>
    public abstract string AttributeMetadataName { get; }

    /// <summary>The attribute as written, without brackets (<c>Lora</c>, <c>IA3</c>).</summary>
    public abstract string DisplayName { get; }

    /// <summary>The method's name in messages ("cannot host LoRA").</summary>
    public abstract string MethodName { get; }

    /// <summary>False for methods whose adapter is not on layers but attached to the model (prompt learning): no
    /// targets are resolved, the injection goes through the runtime's dynamic path.</summary>
    public virtual bool AdaptsLayers => true;

    /// <summary>The targets the method chooses itself from its arguments (bottleneck adapters: the slots of the
    /// placement), or null when the attribute's <c>Targets</c> give them.</summary>
    public virtual string? ImpliedTargets(PlanArguments arguments) => null;

    /// <summary>Rules on the model class itself (prompt learning needs an architecture that leaves
    /// <c>CausalLM.Forward</c> to the runtime).</summary>
    public virtual void CheckModel(PlanArguments arguments, string display, INamedTypeSymbol type, LoraSymbols symbols, List<LoraDiagnostic> diagnostics)
    {
    }

    /// <summary><c>LayersToTransform</c> when the method has it (LoRA), else null.</summary>
    public virtual IReadOnlyList<int>? LayersToTransform(PlanArguments arguments) => null;

    /// <summary>Rules on the arguments alone (hyper-parameter ranges).</summary>
    public virtual void CheckArguments(PlanArguments arguments, string display, List<LoraDiagnostic> diagnostics)
    {
    }

    /// <summary>Rules on a resolved plan with no target error (DoRA on an embedding; IA3's feed-forward subset).</summary>
    public virtual void CheckResolution(PlanArguments arguments, string display, ModuleTree tree, TargetResolution resolution, ImmutableArray<string> kinds, List<LoraDiagnostic> diagnostics)
    {
    }
}
