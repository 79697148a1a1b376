using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Lora.Generators.Diagnostics;
using Lora.Generators.Helpers;

namespace Lora.Generators.Analysis.Methods;

/// <summary><c>[IA3]</c>: <c>FeedForward</c>, when given, is a valid regex (LORA0003) selecting only targets (LORA0014,
/// PEFT's <c>feedforward_modules ⊆ target_modules</c>); a FeedForward that selects no target is a typo, so it is the
/// same error.</summary>
internal sealed class Ia3PlanKind : PlanKind
{
    public override string AttributeMetadataName => WellKnownMetadataNames.IA3Attribute;

    public override string DisplayName => "IA3";

    public override string MethodName => "IA3";

    public override void CheckResolution(PlanArguments a, string display, ModuleTree tree, TargetResolution resolution, ImmutableArray<string> kinds, List<LoraDiagnostic> diagnostics)
    {
        if (a.String("FeedForward") is not { } feedForward)
            return;
        var location = a.LocationOf("FeedForward");
        var ff = tree.Resolve(feedForward, a.ModulesToSave, null, kinds);
        if (ff.RegexError is { } error)
        {
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidTargetsRegex, location, new object[] { display, "FeedForward", feedForward, error }));
            return;
        }

        var targets = new HashSet<ModuleNode>(resolution.Targets.Select(t => t.Node));
        var outside = ff.Targets.Select(t => t.Node).Concat(ff.NotAdaptable).Where(n => !targets.Contains(n)).ToList();
        if (outside.Count > 0)
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.FeedForwardNotTargets, location, new object[] { display, feedForward, $"selects {ModelValidator.Culprits(outside)}, which Targets '{a.Targets}' do not select" }));
        else if (ff.Targets.IsEmpty)
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.FeedForwardNotTargets, location, new object[] { display, feedForward, $"selects none of the layers Targets '{a.Targets}' select" }));
    }
}
