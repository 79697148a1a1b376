using Lora.Generators.Helpers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Lora.Generators.Bench;

/// <summary>
/// The floor: a generator with the same pipelines as <see cref="LoraModelGenerator"/> (one
/// <c>ForAttributeWithMetadataName</c> per plan attribute, the same predicate) whose transform only reads the class's
/// attributes and whose output is one line. What it costs is Roslyn's driver, not ours.
/// </summary>
internal sealed class FloorGenerator : IIncrementalGenerator
{
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        foreach (var attribute in new[] { "Lora.LoraAttribute", "Lora.IA3Attribute" })
        {
            var names = context.SyntaxProvider
                .ForAttributeWithMetadataName(
                    attribute,
                    static (node, _) => node is ClassDeclarationSyntax,
                    static (c, _) => c.TargetSymbol.Name + ":" + string.Join(",", c.TargetSymbol.GetAttributes().Select(a => a.AttributeClass?.Name)))
                .WithTrackingName(WellKnownTrackingNames.Execute);
            context.RegisterSourceOutput(names, static (output, name) => output.AddSource(name.Replace(':', '.').Replace(',', '_') + ".g.cs", "// " + name + "\n"));
        }
    }
}
