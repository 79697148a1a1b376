using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Diagnostics.Analyzers;

/// <summary>LORA0001 (targets match nothing), LORA0002 (target not adaptable), LORA0003 (bad regex), LORA0010
/// (LayersToTransform out of range), LORA0014 (IA3 feed-forward modules that are not targets), LORA0025 (a warning: one
/// alternative of Targets matches no layer while the others do).</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class InvalidLoraTargetAnalyzer : LoraAnalyzerBase
{
    public InvalidLoraTargetAnalyzer()
        : base(DiagnosticDescriptors.TargetsMatchNothing, DiagnosticDescriptors.TargetNotAdaptable,
            DiagnosticDescriptors.InvalidTargetsRegex, DiagnosticDescriptors.InvalidLayersToTransform, DiagnosticDescriptors.FeedForwardNotTargets,
            DiagnosticDescriptors.TargetAlternativeMatchesNothing)
    {
    }
}
