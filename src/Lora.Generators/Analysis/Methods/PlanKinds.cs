using System.Collections.Immutable;

namespace Lora.Generators.Analysis.Methods;

/// <summary>The plan attributes the generator handles, one line per PEFT method (docs/architecture.md).</summary>
internal static class PlanKinds
{
    public static ImmutableArray<PlanKind> All { get; } = ImmutableArray.Create<PlanKind>(
        new LoraPlanKind(),
        new Ia3PlanKind(),
        new PrefixTuningPlanKind(),
        new PromptTuningPlanKind(),
        new PTuningPlanKind(),
        new BottleneckPlanKind());
}
