using System;
using System.Collections.Generic;
using System.Collections.Immutable;
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

/// <summary>One plan attribute with the adapter kinds its method provides and its target resolution (null when the
/// model itself is invalid).</summary>
internal sealed record ValidatedPlan(PlanArguments Arguments, ImmutableArray<string> Kinds, TargetResolution? Resolution)
{
    /// <summary>The method's <c>LayersToTransform</c>, if it has one.</summary>
    public IReadOnlyList<int>? LayersToTransform => Arguments.Plan.Kind.LayersToTransform(Arguments);
}

/// <summary>The result of validating a class carrying plan attributes.</summary>
internal sealed class ModelValidation
{
    public ImmutableArray<LoraDiagnostic> Diagnostics { get; init; } = ImmutableArray<LoraDiagnostic>.Empty;

    public ImmutableArray<ValidatedPlan> Plans { get; init; } = ImmutableArray<ValidatedPlan>.Empty;

    /// <summary>No error (warnings, e.g. LORA0020, leave the plan valid).</summary>
    public bool IsValid => !Diagnostics.Any(d => d.Descriptor.DefaultSeverity == DiagnosticSeverity.Error);

    /// <summary>The ids of the errors, ordinal, distinct (<c>LORA0001, LORA0004</c>).</summary>
    public IEnumerable<string> ErrorIds =>
        Diagnostics.Where(d => d.Descriptor.DefaultSeverity == DiagnosticSeverity.Error).Select(d => d.Descriptor.Id).Distinct().OrderBy(id => id, StringComparer.Ordinal);

    /// <summary>The class's <c>[Quantize]</c>, or null.</summary>
    public QuantizeArguments? Quantize { get; init; }

    /// <summary>The class is partial (with its enclosing types): the generator can add members to it.</summary>
    public bool IsPartial => !Diagnostics.Any(d => d.Descriptor == DiagnosticDescriptors.ModelMustBePartial);

    /// <summary>The class derives from a model.</summary>
    public bool IsModel { get; init; }
}

/// <summary>
/// Every rule in one place, used by the analyzers (which report the diagnostics) and by the generator's parser (which
/// emits only throwing member signatures when there is any): the two can never disagree about what is valid. The
/// shared rules (partial, a model, adapter names, targets) are here; each method's own are its
/// <see cref="Methods.PlanKind"/>; <c>[Quantize]</c>'s are <see cref="QuantizeValidator"/>.
/// </summary>
internal static class ModelValidator
{
    /// <summary>The plan attributes of <paramref name="type"/> (any method), in declaration order.</summary>
    public static ImmutableArray<(AttributeData Data, PlanAttributeSymbol Plan)> PlanAttributes(INamedTypeSymbol type, LoraSymbols symbols)
    {
        if (!symbols.HasRuntime)
            return ImmutableArray<(AttributeData, PlanAttributeSymbol)>.Empty;
        var builder = ImmutableArray.CreateBuilder<(AttributeData, PlanAttributeSymbol)>();
        foreach (var attribute in type.GetAttributes())
        {
            if (symbols.PlanAttributeOf(attribute) is { } plan)
                builder.Add((attribute, plan));
        }

        return builder.ToImmutable();
    }

    public static ModelValidation Validate(INamedTypeSymbol type, LoraSymbols symbols, CancellationToken cancellationToken)
    {
        var attributes = PlanAttributes(type, symbols);
        var diagnostics = new List<LoraDiagnostic>();
        var quantize = symbols.QuantizeAttributeOf(type) is { } quantizeData ? QuantizeArguments.Read(quantizeData) : null;
        if (attributes.IsEmpty)
        {
            // [Quantize] alone: nothing is generated for the class, only [Quantize]'s own rules apply (LORA0015 first).
            if (quantize is not null)
                QuantizeValidator.Check(quantize, $"[Quantize] on '{type.Name}'", hasPlan: false, diagnostics);
            return new ModelValidation { Diagnostics = diagnostics.ToImmutableArray(), Quantize = quantize };
        }

        var arguments = attributes.Select(a => PlanArguments.Read(a.Data, a.Plan)).ToList();
        var name = type.Name;
        string Display(PlanArguments a) => $"{a.Display} on '{name}'";
        var first = arguments.Count > 0 ? Display(arguments[0]) : $"'{name}'";
        var firstLocation = arguments.Select(a => a.AttributeLocation).FirstOrDefault(l => l is not null) ?? type.Locations.FirstOrDefault();

        // LORA0007: partial.
        var declarations = type.DeclaringSyntaxReferences.Select(r => r.GetSyntax(cancellationToken)).OfType<TypeDeclarationSyntax>().ToList();
        if (declarations.Count > 0 && !declarations.Any(d => d.Modifiers.Any(SyntaxKind.PartialKeyword)))
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ModelMustBePartial, declarations[0].Identifier.GetLocation(), new object[] { first }));
        for (var outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
        {
            var outerDeclarations = outer.DeclaringSyntaxReferences.Select(r => r.GetSyntax(cancellationToken)).OfType<TypeDeclarationSyntax>().ToList();
            if (outerDeclarations.Count > 0 && !outerDeclarations.Any(d => d.Modifiers.Any(SyntaxKind.PartialKeyword)))
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ModelMustBePartial, outerDeclarations[0].Identifier.GetLocation(), new object[] { $"{first} (its enclosing type '{outer.Name}')" }));
        }

        // LORA0008: a model.
        var isModel = type.TypeKind == TypeKind.Class && LoraSymbols.DerivesFrom(type.BaseType, symbols.CausalLM);
        if (!isModel)
        {
            var baseSyntax = declarations.Select(d => d.BaseList?.Types.FirstOrDefault()).FirstOrDefault(t => t is not null);
            var baseName = type.BaseType?.ToDisplayString() ?? "object";
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.BaseTypeNotAModel, baseSyntax?.GetLocation() ?? firstLocation, new object[] { first, baseName }));
        }

        // LORA0009: adapter names unique and valid, across every method's attributes.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var a in arguments)
        {
            if (string.IsNullOrWhiteSpace(a.AdapterName) || a.AdapterName.IndexOfAny(new[] { '/', '\\', '.' }) >= 0)
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ConflictingAttributes, a.LocationOf("AdapterName"),
                    new object[] { Display(a), $"AdapterName '{a.AdapterName}' is not a valid adapter name (non-empty, no '/', '\\' or '.')" }));
            else if (!seen.Add(a.AdapterName))
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ConflictingAttributes, a.LocationOf("AdapterName") ?? a.AttributeLocation,
                    new object[] { Display(a), $"another plan attribute already declares the adapter '{a.AdapterName}'; give each its own AdapterName" }));
        }

        var moduleTree = isModel ? ModuleTreeBuilder.Build(type, symbols, cancellationToken) : null;
        var plans = new List<ValidatedPlan>();
        foreach (var a in arguments)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var display = Display(a);
            var kind = a.Plan.Kind;
            var kinds = symbols.AdaptedKindsOf(a.Plan.Symbol);
            kind.CheckArguments(a, display, diagnostics);
            var layers = kind.LayersToTransform(a);
            if (layers is not null)
            {
                var negative = layers.Where(i => i < 0).ToList();
                if (layers.Count == 0)
                    diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidLayersToTransform, a.LocationOf("LayersToTransform"), new object[] { display, "is empty: it would select no layer (leave it unset to adapt every layer)" }));
                else if (negative.Count > 0)
                    diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidLayersToTransform, a.LocationOf("LayersToTransform"), new object[] { display, $"contains {string.Join(", ", negative)}: layer indices start at 0" }));
            }

            if (isModel)
                kind.CheckModel(a, display, type, symbols, diagnostics);
            if (moduleTree is null || !kind.AdaptsLayers)
            {
                // Prompt learning: the encoder is attached to the model, there are no layer targets to resolve.
                plans.Add(new ValidatedPlan(a, kinds, null));
                continue;
            }

            var targetsLocation = a.LocationOf("Targets");
            var targets = kind.ImpliedTargets(a) ?? a.Targets;
            if (string.IsNullOrEmpty(targets))
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetsMatchNothing, targetsLocation,
                    new object[] { display, string.Empty, BaseName(type), List(TargetResolver.AvailableLeaves(moduleTree.Nodes, kinds)) + " (Targets is not set)" }));
                plans.Add(new ValidatedPlan(a, kinds, null));
                continue;
            }

            var resolution = moduleTree.Resolve(targets!, a.ModulesToSave, layers, kinds);
            plans.Add(new ValidatedPlan(a, kinds, resolution));
            if (resolution.RegexError is { } error)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidTargetsRegex, targetsLocation, new object[] { display, "Targets", targets!, error }));
            }
            else if (resolution.NotAdaptable.Length > 0)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetNotAdaptable, targetsLocation,
                    new object[] { display, targets!, Culprits(resolution.NotAdaptable), $"{kind.MethodName} ({kind.MethodName} adapts {Hosts(moduleTree.Nodes, kinds)})", List(resolution.AvailableLeaves) }));
            }
            else if (resolution.Targets.IsEmpty && resolution.OutsideLayers.Length > 0)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidLayersToTransform, a.LocationOf("LayersToTransform"),
                    new object[] { display, $"leaves out every target: {string.Join(", ", resolution.OutsideLayers.Take(3).Select(n => "'" + n.DisplayPath + "'"))} is in no numbered layer (ModuleList)" }));
            }
            else if (resolution.Targets.IsEmpty)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetsMatchNothing, targetsLocation,
                    new object[] { display, targets!, BaseName(type), List(resolution.AvailableLeaves) }));
            }
            else
            {
                kind.CheckResolution(a, display, moduleTree, resolution, kinds, diagnostics);
                CheckAlternatives(display, targets!, targetsLocation, BaseName(type), moduleTree, resolution, a.ModulesToSave, layers, kinds, diagnostics);
            }
        }

        if (quantize is not null)
            QuantizeValidator.Check(quantize, $"[Quantize] on '{name}'", hasPlan: true, diagnostics);

        return new ModelValidation { Diagnostics = diagnostics.ToImmutableArray(), Plans = plans.ToImmutableArray(), IsModel = isModel, Quantize = quantize };
    }

    /// <summary>
    /// LORA0025 (a warning): an alternative of a <c>Targets</c> regex that selects no module while the whole selects some
    /// — a typo such as <c>"q_proj|v_projj"</c>, which PEFT also accepts silently (it raises only when nothing at all
    /// matches: <c>BaseTuner.inject_adapter</c>, tuners_utils.py). Only the top-level alternatives are checked, each
    /// resolved alone with the same rules.
    /// </summary>
    private static void CheckAlternatives(string display, string targets, Location? location, string modelName, ModuleTree tree, TargetResolution whole,
        IReadOnlyList<string> modulesToSave, IReadOnlyList<int>? layers, ImmutableArray<string> kinds, List<LoraDiagnostic> diagnostics)
    {
        var alternatives = TargetResolver.TopLevelAlternatives(targets);
        if (alternatives.Count < 2)
            return;
        foreach (var alternative in alternatives)
        {
            var alone = tree.Resolve(alternative, modulesToSave, layers, kinds);
            if (alone.RegexError is null && alone.Targets.IsEmpty && alone.NotAdaptable.IsEmpty && alone.OutsideLayers.IsEmpty)
            {
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.TargetAlternativeMatchesNothing, location,
                    new object[] { display, alternative, targets, modelName, List(whole.Targets.Select(t => t.Node.Leaf ?? t.Node.DisplayPath).Distinct(StringComparer.Ordinal)), List(whole.AvailableLeaves) }));
            }
        }
    }

    /// <summary>Up to three modules for a message: <c>'path' (Type)</c>.</summary>
    public static string Culprits(IReadOnlyList<ModuleNode> nodes) =>
        string.Join(", ", nodes.Take(3).Select(n => $"'{n.DisplayPath}' ({n.TypeName})"))
        + (nodes.Count > 3 ? $" and {nodes.Count - 3} more" : string.Empty);

    /// <summary>A list for a message, or <c>(none)</c>.</summary>
    public static string List(IEnumerable<string> leaves)
    {
        var list = leaves.ToList();
        return list.Count == 0 ? "(none)" : string.Join(", ", list);
    }

    /// <summary>The layer types of the tree that host one of <paramref name="kinds"/> (<c>LinearLayer, EmbeddingLayer</c>).</summary>
    private static string Hosts(ImmutableArray<ModuleNode> nodes, ImmutableArray<string> kinds) =>
        List(nodes.Where(n => n.Hosts(kinds)).Select(n => n.TypeName).Distinct(StringComparer.Ordinal));

    private static string BaseName(INamedTypeSymbol type) => type.BaseType?.Name ?? type.Name;
}
