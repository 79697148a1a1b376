using Microsoft.CodeAnalysis;

namespace Lora.Generators.Diagnostics;

/// <summary>The Lora diagnostics. Ids are stable; each has a page at docs/diagnostics/LORAxxxx.md.</summary>
internal static class DiagnosticDescriptors
{
    public const string Category = "Lora";

    /// <summary>Where the pages live in the repository. Relative until the project has a public URL: then make this
    /// the absolute base (one constant).</summary>
    public const string HelpBase = "docs/diagnostics/";

    public static readonly DiagnosticDescriptor TargetsMatchNothing = Create(
        "LORA0001",
        "LoRA targets match no adaptable layer",
        "[Lora] on '{0}': Targets '{1}' match no adaptable layer of {2}; adaptable layers: {3}");

    public static readonly DiagnosticDescriptor TargetNotAdaptable = Create(
        "LORA0002",
        "LoRA target is not an adaptable layer",
        "[Lora] on '{0}': Targets '{1}' select {2}, which cannot host {3}; adaptable layers: {4}");

    public static readonly DiagnosticDescriptor InvalidTargetsRegex = Create(
        "LORA0003",
        "LoRA targets are not a valid regular expression",
        "[Lora] on '{0}': Targets '{1}' is not a valid .NET regular expression: {2}");

    public static readonly DiagnosticDescriptor InvalidRank = Create(
        "LORA0004",
        "LoRA rank must be positive",
        "[Lora] on '{0}': R = {1}; the rank must be greater than 0");

    public static readonly DiagnosticDescriptor InvalidAlpha = Create(
        "LORA0005",
        "LoRA alpha must be positive",
        "[Lora] on '{0}': Alpha = {1}; alpha must be greater than 0");

    public static readonly DiagnosticDescriptor InvalidDropout = Create(
        "LORA0006",
        "LoRA dropout must be in [0, 1)",
        "[Lora] on '{0}': Dropout = {1}; dropout must be at least 0 and less than 1");

    public static readonly DiagnosticDescriptor ModelMustBePartial = Create(
        "LORA0007",
        "A [Lora] model class must be partial",
        "[Lora] on '{0}': the class must be declared partial so that the generated members can be added to it");

    public static readonly DiagnosticDescriptor BaseTypeNotAModel = Create(
        "LORA0008",
        "A [Lora] class must derive from a model",
        "[Lora] on '{0}': the base type '{1}' is not a model (a class deriving from Lora.Models.CausalLM)");

    public static readonly DiagnosticDescriptor ConflictingAttributes = Create(
        "LORA0009",
        "Conflicting [Lora] attributes",
        "[Lora] on '{0}': {1}");

    public static readonly DiagnosticDescriptor InvalidLayersToTransform = Create(
        "LORA0010",
        "LayersToTransform is out of range",
        "[Lora] on '{0}': LayersToTransform {1}");

    public static readonly DiagnosticDescriptor CheckpointMissingTargets = Create(
        "LORA0011",
        "LoRA targets are missing from the checkpoint",
        "[Lora] on '{0}': checkpoint '{1}' has no weight for {2} target(s): {3}");

    public static readonly DiagnosticDescriptor CheckpointIncompatibleShape = Create(
        "LORA0012",
        "A LoRA target's checkpoint weight has an incompatible shape",
        "[Lora] on '{0}': checkpoint '{1}': {2}");

    public static readonly DiagnosticDescriptor CheckpointUnreadable = Create(
        "LORA0013",
        "LoRA checkpoint metadata could not be read",
        "[Lora] on '{0}': checkpoint '{1}' could not be checked: {2}",
        DiagnosticSeverity.Warning);

    private static DiagnosticDescriptor Create(string id, string title, string message, DiagnosticSeverity severity = DiagnosticSeverity.Error) =>
        new(id, title, message, Category, severity, isEnabledByDefault: true,
            helpLinkUri: HelpBase + id + ".md");
}
