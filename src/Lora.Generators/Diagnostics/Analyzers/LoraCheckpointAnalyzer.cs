using System.Collections.Immutable;
using System.Linq;
using Lora.Generators.Analysis;
using Lora.Generators.Analysis.Checkpoints;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Diagnostics.Analyzers;

/// <summary>
/// Build-time validation against a real checkpoint (<c>&lt;LoraCheckpoint Include="models/TinyLlama" /&gt;</c>, see
/// docs/generator.md): for every valid plan whose model the checkpoint describes, LORA0011 (target
/// weights missing), LORA0012 (not a compatible 2-D weight), LORA0010 (LayersToTransform beyond the checkpoint's
/// layers) and the warning LORA0013 (the checkpoint's metadata could not be read). Reads only the AdditionalFiles
/// Lora.targets passes: config.json, the safetensors index, and headers extracted to obj/.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class LoraCheckpointAnalyzer : DiagnosticAnalyzer
{
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = ImmutableArray.Create(
        DiagnosticDescriptors.CheckpointMissingTargets,
        DiagnosticDescriptors.CheckpointIncompatibleShape,
        DiagnosticDescriptors.CheckpointUnreadable,
        DiagnosticDescriptors.InvalidLayersToTransform);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(OnCompilationStart);
    }

    private static void OnCompilationStart(CompilationStartAnalysisContext start)
    {
        var symbols = LoraSymbols.Create(start.Compilation);
        if (!symbols.HasRuntime)
            return;
        var checkpoints = CheckpointInfo.Read(start.Options, start.CancellationToken);
        if (checkpoints.IsEmpty)
            return;

        start.RegisterSymbolAction(
            context =>
            {
                var type = (INamedTypeSymbol)context.Symbol;
                if (ModelValidator.PlanAttributes(type, symbols).IsEmpty)
                    return;
                var described = checkpoints.Where(c => c.Describes(type)).ToList();
                if (described.Count == 0)
                    return;

                // Invalid plans are the other analyzers' business; checking them against weights would only add noise.
                var validation = ModelValidator.Validate(type, symbols, context.CancellationToken);
                if (!validation.IsValid)
                    return;
                foreach (var checkpoint in described)
                {
                    if (checkpoint.Problems.Count > 0 || !checkpoint.HasConfig || !checkpoint.HasTensors)
                    {
                        var why = checkpoint.Problems.Count > 0 ? string.Join("; ", checkpoint.Problems)
                            : !checkpoint.HasConfig ? "no config.json" : "no safetensors index or header (only LayersToTransform is checked)";
                        var first = validation.Plans.FirstOrDefault()?.Arguments;
                        context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.CheckpointUnreadable,
                            first?.AttributeLocation ?? type.Locations.FirstOrDefault(), $"{first?.Display ?? "[Lora]"} on '{type.Name}'", checkpoint.Name, why));
                    }

                    foreach (var plan in validation.Plans)
                    {
                        foreach (var diagnostic in CheckpointValidator.Validate($"{plan.Arguments.Display} on '{type.Name}'", plan, checkpoint))
                            context.ReportDiagnostic(diagnostic.ToDiagnostic());
                    }
                }
            },
            SymbolKind.NamedType);
    }
}
