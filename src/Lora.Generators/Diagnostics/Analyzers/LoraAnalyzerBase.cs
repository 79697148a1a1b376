using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Lora.Generators.Analysis;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Diagnostics.Analyzers;

/// <summary>
/// Runs <see cref="ModelValidator"/> (the rules the generator also checks before it emits anything) on every
/// class carrying a plan attribute (<c>[Lora]</c>, <c>[IA3]</c>) or <c>[Quantize]</c>, and reports the diagnostics of this analyzer's rule family.
/// </summary>
public abstract class LoraAnalyzerBase : DiagnosticAnalyzer
{
    private readonly HashSet<string> _ids;

    private protected LoraAnalyzerBase(params DiagnosticDescriptor[] descriptors)
    {
        SupportedDiagnostics = descriptors.ToImmutableArray();
        _ids = new HashSet<string>(descriptors.Select(d => d.Id));
    }

    public sealed override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; }

    public sealed override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(OnCompilationStart);
    }

    private void OnCompilationStart(CompilationStartAnalysisContext start)
    {
        var symbols = LoraSymbols.Create(start.Compilation);
        if (!symbols.HasRuntime)
            return;
        start.RegisterSymbolAction(
            context =>
            {
                var type = (INamedTypeSymbol)context.Symbol;
                if (ModelValidator.PlanAttributes(type, symbols).IsEmpty && symbols.QuantizeAttributeOf(type) is null)
                    return;
                var validation = ModelValidator.Validate(type, symbols, context.CancellationToken);
                foreach (var diagnostic in validation.Diagnostics)
                {
                    if (_ids.Contains(diagnostic.Descriptor.Id))
                        context.ReportDiagnostic(diagnostic.ToDiagnostic());
                }
            },
            SymbolKind.NamedType);
    }
}
