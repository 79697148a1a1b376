using Lora.Generators.Analysis.Methods;
using Lora.Generators.Helpers;
using Lora.Generators.Model;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Lora.Generators;

/// <summary>
/// Emits, for every <c>partial</c> class carrying plan attributes (<c>[Lora]</c>, <c>[IA3]</c>: one pipeline per method,
/// <see cref="PlanKinds"/>), what only build-time resolution gives: the plans, the typed target list, injection into
/// exactly those layers and the state-dict map, plus the PEFT-named <c>PrintTrainableParameters</c> and a
/// <c>FromPretrained</c> delegating to the runtime; the class becomes an <c>IPeftModel</c>, and the rest (save, load,
/// train, merge) is runtime API over it (docs/generator.md). Invalid plans are reported by the analyzers (they share
/// <see cref="Analysis.ModelValidator"/>); for those the generator emits the same signatures with bodies that throw,
/// so user code calling them compiles and the LORA errors are the only errors.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed partial class LoraModelGenerator : IIncrementalGenerator
{
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        foreach (var kind in PlanKinds.All)
        {
            // Symbols → equatable spec, in one transform; nothing symbolic leaves it. A class with attributes of several
            // methods is handled by the pipeline of its first one.
            var specs = context.SyntaxProvider
                .ForAttributeWithMetadataName(
                    kind.AttributeMetadataName,
                    static (node, _) => node is ClassDeclarationSyntax,
                    static (context, token) => Parser.Parse(context, token))
                .WithTrackingName(WellKnownTrackingNames.Execute);

            var output = specs
                .Where(static spec => spec is not null)
                .Select(static (spec, _) => spec!)
                .WithTrackingName(WellKnownTrackingNames.Output);

            context.RegisterSourceOutput(output, static (output, spec) => Emit(output, spec));
        }
    }

    private static void Emit(SourceProductionContext output, PeftModelSpec spec)
    {
        if (spec.Invalid is not null)
        {
            output.AddSource($"{spec.Hierarchy.MetadataName}.Lora.g.cs", Emitter.EmitInvalid(spec));
            return;
        }

        output.AddSource($"{spec.Hierarchy.MetadataName}.Lora.g.cs", Emitter.EmitModel(spec));
        output.AddSource($"{spec.Hierarchy.MetadataName}.Lora.Targets.g.cs", Emitter.EmitTargets(spec));
    }
}
