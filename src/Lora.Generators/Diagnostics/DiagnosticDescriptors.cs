using System.Linq;
using System.Reflection;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Diagnostics;

/// <summary>
/// The Lora diagnostics. Ids are stable; each has a page at <c>docs/diagnostics/LORAxxxx.md</c>, linked by an absolute
/// <see cref="DiagnosticDescriptor.HelpLinkUri"/> into the repository (<c>RepositoryUrl</c> of the build, stamped into
/// this assembly), so a package user can open it from the IDE. Every message starts with the attribute and the class,
/// e.g. <c>[Lora] on 'M': …</c> ({0}).
/// </summary>
internal static class DiagnosticDescriptors
{
    public const string Category = "Lora";

    /// <summary>The absolute base of the pages: <c>{RepositoryUrl}/blob/main/docs/diagnostics/</c>.</summary>
    public static readonly string HelpBase =
        (typeof(DiagnosticDescriptors).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "RepositoryUrl")?.Value
            ?? "https://github.com/lora-dotnet/lora").TrimEnd('/') + "/blob/main/docs/diagnostics/";

    public static readonly DiagnosticDescriptor TargetsMatchNothing = Create(
        "LORA0001",
        "Targets match no adaptable layer",
        "{0}: Targets '{1}' match no adaptable layer of {2}; adaptable layers: {3}");

    public static readonly DiagnosticDescriptor TargetNotAdaptable = Create(
        "LORA0002",
        "A target cannot host the adapter",
        "{0}: Targets '{1}' select {2}, which cannot host {3}; adaptable layers: {4}");

    public static readonly DiagnosticDescriptor InvalidTargetsRegex = Create(
        "LORA0003",
        "Targets are not a valid regular expression",
        "{0}: {1} '{2}' is not a valid .NET regular expression: {3}");

    public static readonly DiagnosticDescriptor InvalidRank = Create(
        "LORA0004",
        "LoRA rank must be positive",
        "{0}: R = {1}; the rank must be greater than 0");

    public static readonly DiagnosticDescriptor InvalidAlpha = Create(
        "LORA0005",
        "LoRA alpha must be positive",
        "{0}: Alpha = {1}; alpha must be greater than 0");

    public static readonly DiagnosticDescriptor InvalidDropout = Create(
        "LORA0006",
        "LoRA dropout must be in [0, 1)",
        "{0}: Dropout = {1}; dropout must be at least 0 and less than 1");

    public static readonly DiagnosticDescriptor ModelMustBePartial = Create(
        "LORA0007",
        "A model class with an adapter plan must be partial",
        "{0}: the class must be declared partial so that the generated members can be added to it");

    public static readonly DiagnosticDescriptor BaseTypeNotAModel = Create(
        "LORA0008",
        "A model class with an adapter plan must derive from a model",
        "{0}: the base type '{1}' is not a model (a class deriving from Lora.Models.CausalLM)");

    public static readonly DiagnosticDescriptor ConflictingAttributes = Create(
        "LORA0009",
        "Conflicting adapter plans",
        "{0}: {1}");

    public static readonly DiagnosticDescriptor InvalidLayersToTransform = Create(
        "LORA0010",
        "LayersToTransform is out of range",
        "{0}: LayersToTransform {1}");

    public static readonly DiagnosticDescriptor CheckpointMissingTargets = Create(
        "LORA0011",
        "Targets are missing from the checkpoint",
        "{0}: checkpoint '{1}' has no weight for {2} target(s): {3}");

    public static readonly DiagnosticDescriptor CheckpointIncompatibleShape = Create(
        "LORA0012",
        "A target's checkpoint weight has an incompatible shape",
        "{0}: checkpoint '{1}': {2}");

    public static readonly DiagnosticDescriptor CheckpointUnreadable = Create(
        "LORA0013",
        "Checkpoint metadata could not be read",
        "{0}: checkpoint '{1}' could not be checked: {2}",
        DiagnosticSeverity.Warning);

    public static readonly DiagnosticDescriptor FeedForwardNotTargets = Create(
        "LORA0014",
        "IA3 feed-forward modules must be targets",
        "{0}: FeedForward '{1}' {2}; every feed-forward module must be a target (PEFT requires feedforward_modules to be a subset of target_modules)");

    public static readonly DiagnosticDescriptor QuantizeWithoutPlan = Create(
        "LORA0015",
        "[Quantize] needs an adapter plan",
        "{0}: the class has no adapter plan attribute ([Lora], [IA3], [PrefixTuning], [PromptTuning], [PTuning], [BottleneckAdapter]); quantization applies to the frozen base of a model with adapters, so add a plan or remove [Quantize]");

    public static readonly DiagnosticDescriptor InvalidQuantizeBlocksize = Create(
        "LORA0016",
        "Unsupported 4-bit block size",
        "{0}: Blocksize = {1}; 4-bit weights use one of bitsandbytes' block sizes: {2}");

    public static readonly DiagnosticDescriptor InvalidQuantizeDoubleQuant = Create(
        "LORA0017",
        "Double quantization of int8 weights",
        "{0}: DoubleQuant = true with QuantizationType.Int8; double quantization applies to the block scales of 4-bit weights (Nf4, Fp4), int8 weights have one fp32 scale per row");

    public static readonly DiagnosticDescriptor InvalidQuantizeCompute = Create(
        "LORA0018",
        "Unsupported compute dtype",
        "{0}: {1}; the compute dtype must be ScalarType.Float32, ScalarType.BFloat16 or ScalarType.Float16");

    public static readonly DiagnosticDescriptor InvalidQuantizeThreshold = Create(
        "LORA0019",
        "Int8 outlier threshold must not be negative",
        "{0}: Int8Threshold = {1}; the outlier threshold must be at least 0 (0 turns the outlier decomposition off)");

    public static readonly DiagnosticDescriptor QuantizeSettingIgnored = Create(
        "LORA0020",
        "[Quantize] setting has no effect for the quantization type",
        "{0}: {1} has no effect with {2} ({3}); remove it",
        DiagnosticSeverity.Warning);

    public static readonly DiagnosticDescriptor InvalidPromptLearningSetting = Create(
        "LORA0021",
        "Invalid prompt-learning setting",
        "{0}: {1} = {2}; {3}");

    public static readonly DiagnosticDescriptor ModelRejectsPromptLearning = Create(
        "LORA0022",
        "The model's architecture cannot take prompt-learning adapters",
        "{0}: '{1}' overrides CausalLM.Forward, so virtual tokens and key/value prefixes would never enter its forward pass; implement CausalLM.Decode instead (as the built-in architectures do), or use a layer-adapting method");

    public static readonly DiagnosticDescriptor BottleneckTargetsGiven = Create(
        "LORA0023",
        "Bottleneck adapters take their slots from Placement",
        "{0}: Targets '{1}' is set, but bottleneck adapters go into the decoder blocks' adapter slots that Placement chooses (Pfeiffer: output_adapters; Houlsby: attention_adapters and output_adapters); remove Targets");

    public static readonly DiagnosticDescriptor InvalidBottleneckSetting = Create(
        "LORA0024",
        "Invalid bottleneck-adapter setting",
        "{0}: {1} = {2}; {3}");

    public static readonly DiagnosticDescriptor TargetAlternativeMatchesNothing = Create(
        "LORA0025",
        "A Targets alternative matches no layer",
        "{0}: the alternative '{1}' of Targets '{2}' matches no layer of {3}, so it adapts nothing (the other alternatives select {4}); adaptable layers: {5}",
        DiagnosticSeverity.Warning);

    private static DiagnosticDescriptor Create(string id, string title, string message, DiagnosticSeverity severity = DiagnosticSeverity.Error) =>
        new(id, title, message, Category, severity, isEnabledByDefault: true,
            helpLinkUri: HelpBase + id + ".md");
}
