using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using Lora.Generators.Diagnostics;
using Lora.Generators.Helpers;

namespace Lora.Generators.Analysis.Methods;

/// <summary><c>[Lora]</c>: R &gt; 0 (LORA0004), Alpha &gt; 0 (LORA0005), Dropout in [0, 1) (LORA0006),
/// LayersToTransform, and no DoRA on an embedding table (LORA0002, as PEFT's <c>lora.Embedding</c> refuses it).</summary>
internal sealed class LoraPlanKind : PlanKind
{
    private const string EmbeddingAdapter = "Lora.Peft.EmbeddingAdapter";

    public override string AttributeMetadataName => WellKnownMetadataNames.LoraAttribute;

    public override string DisplayName => "Lora";

    public override string MethodName => "LoRA";

    public override IReadOnlyList<int>? LayersToTransform(PlanArguments arguments) => arguments.IntArray("LayersToTransform");

    public override void CheckArguments(PlanArguments a, string display, List<LoraDiagnostic> diagnostics)
    {
        var r = a.Int("R", 8);
        var alpha = a.Double("Alpha", 8);
        var dropout = a.Double("Dropout", 0);
        if (r <= 0)
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidRank, a.LocationOf("R"), new object[] { display, r }));
        if (!(alpha > 0) || double.IsInfinity(alpha))
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidAlpha, a.LocationOf("Alpha"), new object[] { display, Format(alpha) }));
        if (!(dropout >= 0 && dropout < 1))
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidDropout, a.LocationOf("Dropout"), new object[] { display, Format(dropout) }));
    }

    public override void CheckResolution(PlanArguments a, string display, ModuleTree tree, TargetResolution resolution, ImmutableArray<string> kinds, List<LoraDiagnostic> diagnostics)
    {
        if (!a.Bool("UseDora", false))
            return;
        var embeddings = resolution.Targets.Where(t => t.Node.HostKind == EmbeddingAdapter).Select(t => t.Node).ToList();
        if (embeddings.Count > 0)
        {
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetNotAdaptable, a.LocationOf("Targets"),
                new object[] { display, a.Targets!, ModelValidator.Culprits(embeddings), "DoRA (UseDora = true applies to linear layers only; leave the embedding out of Targets or turn DoRA off)", ModelValidator.List(resolution.AvailableLeaves) }));
        }
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
