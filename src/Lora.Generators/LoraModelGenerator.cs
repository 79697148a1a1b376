using Lora.Generators.Helpers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Lora.Generators;

/// <summary>
/// Emits the typed LoRA members of every <c>partial</c> class carrying <c>[Lora(...)]</c>: the plan, injection into
/// exactly the resolved fields, save/load, merge and the parameter summary (docs/generator.md). Invalid plans are
/// reported by the analyzers (they share <see cref="Analysis.LoraModelValidator"/>); for those the generator emits
/// nothing that depends on the plan (only the forwarding constructors, when the class is a valid partial model), so
/// there is no cascade of compiler errors.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed partial class LoraModelGenerator : IIncrementalGenerator
{
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        // Symbols → equatable spec (null when invalid), in one transform; nothing symbolic leaves it.
        var specs = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                WellKnownMetadataNames.LoraAttribute,
                static (node, _) => node is ClassDeclarationSyntax,
                static (context, token) => Parser.Parse(context, token))
            .WithTrackingName(WellKnownTrackingNames.Execute);

        var valid = specs
            .Where(static spec => spec is not null)
            .Select(static (spec, _) => spec!)
            .WithTrackingName(WellKnownTrackingNames.Output);

        context.RegisterSourceOutput(valid, static (output, spec) =>
        {
            if (spec.Plans.IsEmpty)
            {
                // Invalid plan (reported by the analyzers): only what keeps the class constructible.
                if (!spec.Constructors.IsEmpty)
                    output.AddSource($"{spec.Hierarchy.MetadataName}.Lora.g.cs", Emitter.EmitConstructorsOnly(spec));
                return;
            }

            output.AddSource($"{spec.Hierarchy.MetadataName}.Lora.g.cs", Emitter.EmitModel(spec));
            output.AddSource($"{spec.Hierarchy.MetadataName}.Lora.StateDict.g.cs", Emitter.EmitStateDict(spec));
        });
    }
}
