using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Diagnostics.Analyzers;

/// <summary>LORA0007 (class not partial), LORA0008 (base type not a model), LORA0009 (conflicting attributes).</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class InvalidLoraModelDeclarationAnalyzer : LoraAnalyzerBase
{
    public InvalidLoraModelDeclarationAnalyzer()
        : base(DiagnosticDescriptors.ModelMustBePartial, DiagnosticDescriptors.BaseTypeNotAModel, DiagnosticDescriptors.ConflictingAttributes)
    {
    }
}
