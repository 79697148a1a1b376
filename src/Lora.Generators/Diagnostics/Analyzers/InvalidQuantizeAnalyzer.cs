using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Diagnostics.Analyzers;

/// <summary>LORA0015 ([Quantize] without an adapter plan), LORA0016 (block size), LORA0017 (double quantization of
/// int8), LORA0018 (compute dtype), LORA0019 (negative int8 threshold), and the warning LORA0020 (a setting the
/// quantization type ignores).</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class InvalidQuantizeAnalyzer : LoraAnalyzerBase
{
    public InvalidQuantizeAnalyzer()
        : base(DiagnosticDescriptors.QuantizeWithoutPlan, DiagnosticDescriptors.InvalidQuantizeBlocksize, DiagnosticDescriptors.InvalidQuantizeDoubleQuant,
            DiagnosticDescriptors.InvalidQuantizeCompute, DiagnosticDescriptors.InvalidQuantizeThreshold, DiagnosticDescriptors.QuantizeSettingIgnored)
    {
    }
}
