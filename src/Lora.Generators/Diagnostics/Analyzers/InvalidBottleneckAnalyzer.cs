using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Diagnostics.Analyzers;

/// <summary>LORA0023 (Targets on a bottleneck plan, whose slots Placement chooses), LORA0024 (a bottleneck setting out
/// of range).</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class InvalidBottleneckAnalyzer : LoraAnalyzerBase
{
    public InvalidBottleneckAnalyzer()
        : base(DiagnosticDescriptors.BottleneckTargetsGiven, DiagnosticDescriptors.InvalidBottleneckSetting)
    {
    }
}
