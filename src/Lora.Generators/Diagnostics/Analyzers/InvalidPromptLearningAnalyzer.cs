using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Diagnostics.Analyzers;

/// <summary>LORA0021 (a prompt-learning setting out of range), LORA0022 (an architecture that overrides
/// <c>CausalLM.Forward</c>, so virtual tokens cannot enter it).</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class InvalidPromptLearningAnalyzer : LoraAnalyzerBase
{
    public InvalidPromptLearningAnalyzer()
        : base(DiagnosticDescriptors.InvalidPromptLearningSetting, DiagnosticDescriptors.ModelRejectsPromptLearning)
    {
    }
}
