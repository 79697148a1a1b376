using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using System.Threading;
using Lora.Generators.Diagnostics;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Lora.Generators.Analysis;

/// <summary>A diagnostic to report: descriptor, location and message arguments.</summary>
internal sealed record LoraDiagnostic(DiagnosticDescriptor Descriptor, Location? Location, object[] Arguments)
{
    public Diagnostic ToDiagnostic() => Diagnostic.Create(Descriptor, Location, Arguments);
}

/// <summary>One attribute with its target resolution (null when the model itself is invalid).</summary>
internal sealed record ValidatedPlan(LoraAttributeArguments Arguments, TargetResolution? Resolution);

/// <summary>The result of validating a <c>[Lora]</c> class.</summary>
internal sealed class LoraModelValidation
{
    public ImmutableArray<LoraDiagnostic> Diagnostics { get; init; } = ImmutableArray<LoraDiagnostic>.Empty;

    public ImmutableArray<ValidatedPlan> Plans { get; init; } = ImmutableArray<ValidatedPlan>.Empty;

    public bool IsValid => Diagnostics.IsEmpty;

    /// <summary>The class itself is fine (partial, a model): the generator can add members to it.</summary>
    public bool IsValidDeclaration => !Diagnostics.Any(d =>
        d.Descriptor == DiagnosticDescriptors.ModelMustBePartial || d.Descriptor == DiagnosticDescriptors.BaseTypeNotAModel);
}

/// <summary>
/// Every LORA rule in one place, used by the analyzers (which report the diagnostics) and by the generator's parser
/// (which emits nothing when there is any): the two can never disagree about what is valid.
/// </summary>
internal static class LoraModelValidator
{
    /// <summary>The <c>[Lora]</c> attributes of <paramref name="type"/>, in declaration order.</summary>
    public static ImmutableArray<AttributeData> LoraAttributes(INamedTypeSymbol type, LoraSymbols symbols) =>
        type.GetAttributes().Where(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, symbols.LoraAttribute)).ToImmutableArray();

    public static LoraModelValidation Validate(INamedTypeSymbol type, LoraSymbols symbols, CancellationToken cancellationToken)
    {
        var attributes = LoraAttributes(type, symbols);
        var diagnostics = new List<LoraDiagnostic>();
        var arguments = attributes.Select(LoraAttributeArguments.Read).ToList();
        var name = type.Name;
        var firstLocation = arguments.Select(a => a.AttributeLocation).FirstOrDefault(l => l is not null) ?? type.Locations.FirstOrDefault();

        // LORA0007: partial.
        var declarations = type.DeclaringSyntaxReferences.Select(r => r.GetSyntax(cancellationToken)).OfType<TypeDeclarationSyntax>().ToList();
        if (declarations.Count > 0 && !declarations.Any(d => d.Modifiers.Any(SyntaxKind.PartialKeyword)))
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ModelMustBePartial, declarations[0].Identifier.GetLocation(), new object[] { name }));
        for (var outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
        {
            var outerDeclarations = outer.DeclaringSyntaxReferences.Select(r => r.GetSyntax(cancellationToken)).OfType<TypeDeclarationSyntax>().ToList();
            if (outerDeclarations.Count > 0 && !outerDeclarations.Any(d => d.Modifiers.Any(SyntaxKind.PartialKeyword)))
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ModelMustBePartial, outerDeclarations[0].Identifier.GetLocation(), new object[] { name + "' (its enclosing type '" + outer.Name }));
        }

        // LORA0008: a model.
        var isModel = type.TypeKind == TypeKind.Class && LoraSymbols.DerivesFrom(type.BaseType, symbols.CausalLM);
        if (!isModel)
        {
            var baseSyntax = declarations.Select(d => d.BaseList?.Types.FirstOrDefault()).FirstOrDefault(t => t is not null);
            var baseName = type.BaseType?.ToDisplayString() ?? "object";
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.BaseTypeNotAModel, baseSyntax?.GetLocation() ?? firstLocation, new object[] { name, baseName }));
        }

        // LORA0009: adapter names unique and non-empty.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var a in arguments)
        {
            if (string.IsNullOrWhiteSpace(a.AdapterName) || a.AdapterName.IndexOfAny(new[] { '/', '\\', '.' }) >= 0)
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ConflictingAttributes, a.LocationOf("AdapterName"),
                    new object[] { name, $"AdapterName '{a.AdapterName}' is not a valid adapter name (non-empty, no '/', '\\' or '.')" }));
            else if (!seen.Add(a.AdapterName))
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ConflictingAttributes, a.LocationOf("AdapterName") ?? a.AttributeLocation,
                    new object[] { name, $"another [Lora] already declares the adapter '{a.AdapterName}'; give each [Lora] its own AdapterName" }));
        }

        var moduleTree = isModel ? ModuleTreeBuilder.Build(type, symbols, cancellationToken) : null;
        var tree = moduleTree?.Nodes ?? ImmutableArray<ModuleNode>.Empty;
        var plans = new List<ValidatedPlan>();
        foreach (var a in arguments)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (a.R <= 0)
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidRank, a.LocationOf("R"), new object[] { name, a.R }));
            if (!(a.Alpha > 0) || double.IsInfinity(a.Alpha))
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidAlpha, a.LocationOf("Alpha"), new object[] { name, Format(a.Alpha) }));
            if (!(a.Dropout >= 0 && a.Dropout < 1))
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidDropout, a.LocationOf("Dropout"), new object[] { name, Format(a.Dropout) }));
            if (a.LayersToTransform is { } layers)
            {
                var negative = layers.Where(i => i < 0).ToList();
                if (layers.Count == 0)
                    diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidLayersToTransform, a.LocationOf("LayersToTransform"), new object[] { name, "is empty: it would select no layer (leave it unset to adapt every layer)" }));
                else if (negative.Count > 0)
                    diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidLayersToTransform, a.LocationOf("LayersToTransform"), new object[] { name, $"contains {string.Join(", ", negative)}: layer indices start at 0" }));
            }

            if (!isModel)
            {
                plans.Add(new ValidatedPlan(a, null));
                continue;
            }

            var targetsLocation = a.LocationOf("Targets");
            if (string.IsNullOrEmpty(a.Targets))
            {
                var leaves = tree.Where(n => n.IsAdaptable).Select(n => n.Leaf ?? "{i}").Distinct(StringComparer.Ordinal);
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetsMatchNothing, targetsLocation,
                    new object[] { name, string.Empty, BaseName(type), List(leaves) + " (Targets is not set)" }));
                plans.Add(new ValidatedPlan(a, null));
                continue;
            }

            var resolution = moduleTree!.Resolve(a.Targets!, a.ModulesToSave, a.LayersToTransform);
            plans.Add(new ValidatedPlan(a, resolution));
            if (resolution.RegexError is { } error)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidTargetsRegex, targetsLocation, new object[] { name, a.Targets!, error }));
            }
            else if (resolution.NotAdaptable.Length > 0)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetNotAdaptable, targetsLocation,
                    new object[] { name, a.Targets!, Culprits(resolution.NotAdaptable), "LoRA (only linear layers, LinearLayer and Conv1D, and embedding tables named by Targets can)", List(resolution.AvailableLeaves) }));
            }
            else if (a.UseDora && resolution.Targets.Any(t => t.Node.Kind == ModuleKind.Embedding))
            {
                // PEFT has no DoRA for embeddings either (lora.Embedding refuses use_dora); the runtime throws the same.
                var embeddings = resolution.Targets.Where(t => t.Node.Kind == ModuleKind.Embedding).Select(t => t.Node).ToList();
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetNotAdaptable, targetsLocation,
                    new object[] { name, a.Targets!, Culprits(embeddings), "DoRA (UseDora = true applies to linear layers only; leave the embedding out of Targets or turn DoRA off)", List(resolution.AvailableLeaves) }));
            }
            else if (resolution.Targets.IsEmpty && resolution.OutsideLayers.Length > 0)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidLayersToTransform, a.LocationOf("LayersToTransform"),
                    new object[] { name, $"leaves out every target: {string.Join(", ", resolution.OutsideLayers.Take(3).Select(n => "'" + n.DisplayPath + "'"))} is in no numbered layer (ModuleList)" }));
            }
            else if (resolution.Targets.IsEmpty)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetsMatchNothing, targetsLocation,
                    new object[] { name, a.Targets!, BaseName(type), List(resolution.AvailableLeaves) }));
            }
        }

        return new LoraModelValidation { Diagnostics = diagnostics.ToImmutableArray(), Plans = plans.ToImmutableArray() };
    }

    private static string Culprits(IReadOnlyList<ModuleNode> nodes) =>
        string.Join(", ", nodes.Take(3).Select(n => $"'{n.DisplayPath}' ({n.TypeName})"))
        + (nodes.Count > 3 ? $" and {nodes.Count - 3} more" : string.Empty);

    private static string BaseName(INamedTypeSymbol type) => type.BaseType?.Name ?? type.Name;

    private static string List(IEnumerable<string> leaves)
    {
        var list = leaves.ToList();
        return list.Count == 0 ? "(none)" : string.Join(", ", list);
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
