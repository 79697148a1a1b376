using System.Collections.Immutable;
using Lora.Generators.Diagnostics.Analyzers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Tests.Helpers;

internal static class AnalyzerRunner
{
    public static ImmutableArray<DiagnosticAnalyzer> All { get; } =
        [new InvalidLoraTargetAnalyzer(), new InvalidLoraHyperparameterAnalyzer(), new InvalidLoraModelDeclarationAnalyzer(), new InvalidQuantizeAnalyzer(), new InvalidPromptLearningAnalyzer(), new InvalidBottleneckAnalyzer(), new LoraCheckpointAnalyzer()];

    /// <summary>The Lora analyzers' diagnostics on <paramref name="compilation"/>.</summary>
    public static Task<ImmutableArray<Diagnostic>> Diagnostics(Compilation compilation) =>
        compilation.WithAnalyzers(All).GetAnalyzerDiagnosticsAsync();
}
