using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Lora.Generators.Diagnostics;
using Lora.Generators.Helpers;

namespace Lora.Generators.Analysis.Methods;

/// <summary><c>[BottleneckAdapter]</c>: the slots come from <c>Placement</c> (Pfeiffer: <c>output_adapters</c>;
/// Houlsby: <c>attention_adapters|output_adapters</c>), so <c>Targets</c> is not set (LORA0023); <c>Size</c> or
/// <c>ReductionFactor</c>, not both, positive; a known <c>NonLinearity</c>; <c>Dropout</c> in [0, 1) (LORA0024).</summary>
internal sealed class BottleneckPlanKind : PlanKind
{
    /// <summary>AdapterHub's activation names the runtime implements (<c>BottleneckActivation.Names</c>).</summary>
    private static readonly string[] NonLinearities = { "relu", "swish", "silu", "gelu", "gelu_new", "tanh", "sigmoid", "leakyrelu" };

    public override string AttributeMetadataName => WellKnownMetadataNames.BottleneckAdapterAttribute;

    public override string DisplayName => "BottleneckAdapter";

    public override string MethodName => "a bottleneck adapter";

    /// <summary>Placement 1 is Houlsby (both slots), 0 Pfeiffer (after the MLP).</summary>
    public override string? ImpliedTargets(PlanArguments arguments) =>
        arguments.Int("Placement", 0) == 1 ? "attention_adapters|output_adapters" : "output_adapters";

    public override void CheckArguments(PlanArguments a, string display, List<LoraDiagnostic> diagnostics)
    {
        if (a.Targets is { } targets)
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.BottleneckTargetsGiven, a.LocationOf("Targets"), new object[] { display, targets }));
        var size = a.Int("Size", 0);
        var factor = a.Double("ReductionFactor", 0);
        if (size < 0)
            Invalid("Size", size.ToString(CultureInfo.InvariantCulture), "the bottleneck width must be positive (or 0 to take it from ReductionFactor)");
        if (!(factor >= 0) || double.IsInfinity(factor))
            Invalid("ReductionFactor", Format(factor), "the reduction factor must be positive (or 0 for AdapterHub's 16)");
        if (size > 0 && factor > 0)
            Invalid("ReductionFactor", Format(factor), $"give Size ({size}) or ReductionFactor, not both: AdapterHub stores one reduction factor");
        if (a.String("NonLinearity") is { } act && !NonLinearities.Contains(act.ToLowerInvariant()))
            Invalid("NonLinearity", "\"" + act + "\"", "not one of " + string.Join(", ", NonLinearities));
        var dropout = a.Double("Dropout", 0);
        if (!(dropout >= 0 && dropout < 1))
            Invalid("Dropout", Format(dropout), "dropout must be at least 0 and less than 1");

        void Invalid(string argument, string value, string rule) =>
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidBottleneckSetting, a.LocationOf(argument), new object[] { display, argument, value, rule }));
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
