using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Diagnostics.Analyzers;

/// <summary>LORA0004 (R &lt;= 0), LORA0005 (Alpha &lt;= 0), LORA0006 (Dropout outside [0, 1)).</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class InvalidLoraHyperparameterAnalyzer : LoraAnalyzerBase
{
    public InvalidLoraHyperparameterAnalyzer()
        : base(DiagnosticDescriptors.InvalidRank, DiagnosticDescriptors.InvalidAlpha, DiagnosticDescriptors.InvalidDropout)
    {
    }
}
