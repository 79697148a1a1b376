using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using Lora.Generators.Helpers;
using Lora.Generators.Model;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Analysis;

/// <summary>What a module is, as far as LoRA is concerned.</summary>
internal enum ModuleKind
{
    /// <summary>A module the walk descends into (an attention block, a decoder layer, a <c>ModuleList</c>).</summary>
    Container,

    /// <summary><c>Lora.Modules.LinearLayer</c>: adaptable.</summary>
    Linear,

    /// <summary><c>Lora.Modules.Conv1D</c> (GPT-2, fan_in_fan_out): adaptable.</summary>
    Conv1D,

    /// <summary><c>Lora.Modules.EmbeddingLayer</c>: adaptable when the targets name it (PEFT's <c>lora.Embedding</c>).</summary>
    Embedding,

    /// <summary>Any other leaf (norms, dropout, TorchSharp modules): not adaptable.</summary>
    Other,
}

/// <summary>A module of the tree: the steps from the root, its kind, and its C# type name (for messages).</summary>
internal sealed record ModuleNode(EquatableArray<AccessStep> Steps, ModuleKind Kind, string TypeName)
{
    /// <summary>A linear layer: what a broad pattern is meant to select, and what messages list.</summary>
    public bool IsAdaptable => Kind is ModuleKind.Linear or ModuleKind.Conv1D;

    /// <summary>Can host a LoRA adapter: a linear layer, or an embedding table the targets name.</summary>
    public bool IsHost => IsAdaptable || Kind == ModuleKind.Embedding;

    public int PlaceholderCount => Steps.Count(s => s.IsListIndex);

    /// <summary>The dotted path with list indices as <c>{0}</c>, <c>{1}</c>... in order.</summary>
    public string PathTemplate
    {
        get
        {
            var parts = new List<string>(Steps.Length);
            var ordinal = 0;
            foreach (var step in Steps)
                parts.Add(step.IsListIndex ? "{" + ordinal++ + "}" : step.HfName);
            return string.Join(".", parts);
        }
    }

    /// <summary>The dotted path for display, list indices as <c>{i}</c>.</summary>
    public string DisplayPath => string.Join(".", Steps.Select(s => s.IsListIndex ? "{i}" : s.HfName));

    /// <summary>The leaf (Hugging Face) name, or null when the leaf is a list index.</summary>
    public string? Leaf => Steps[Steps.Length - 1].IsListIndex ? null : Steps[Steps.Length - 1].HfName;
}

/// <summary>
/// Walks the module tree of a model type at compile time: public instance fields (declared or inherited, in any
/// assembly) whose type derives from TorchSharp's <c>nn.Module</c>, named by <c>[ComponentName(Name = ...)]</c> or
/// the field name, descending through <c>ModuleList&lt;T&gt;</c> element types. Linear/Conv1D/Embedding layers and
/// TorchSharp's own modules are leaves.
/// </summary>
internal static class ModuleTreeBuilder
{
    private const int MaxDepth = 32;

    public static ImmutableArray<ModuleNode> Build(INamedTypeSymbol root, LoraSymbols symbols, CancellationToken cancellationToken)
    {
        var nodes = ImmutableArray.CreateBuilder<ModuleNode>();
        var visiting = new HashSet<ITypeSymbol>(SymbolEqualityComparer.Default);
        WalkFields(root, ImmutableArray<AccessStep>.Empty, symbols, nodes, visiting, cancellationToken);
        return nodes.ToImmutable();
    }

    private static void WalkFields(INamedTypeSymbol type, ImmutableArray<AccessStep> prefix, LoraSymbols symbols,
        ImmutableArray<ModuleNode>.Builder nodes, HashSet<ITypeSymbol> visiting, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (prefix.Length > MaxDepth || !visiting.Add(type.OriginalDefinition))
            return;

        // Base types first, as TorchSharp registers them; stop at TorchSharp's own types.
        var chain = new List<INamedTypeSymbol>();
        for (var t = type; t is not null && !IsTorchSharpType(t, symbols); t = t.BaseType)
            chain.Add(t);
        chain.Reverse();

        foreach (var declaring in chain)
        {
            foreach (var field in declaring.GetMembers().OfType<IFieldSymbol>())
            {
                if (field.IsStatic || field.IsConst || field.IsImplicitlyDeclared || field.DeclaredAccessibility != Accessibility.Public)
                    continue;
                if (field.Type is not INamedTypeSymbol fieldType || !LoraSymbols.DerivesFrom(fieldType, symbols.Module))
                    continue;
                var step = new AccessStep(field.Name, HfName(field, symbols), IsListIndex: false,
                    IsNullable: field.NullableAnnotation == NullableAnnotation.Annotated);
                AddModule(fieldType, prefix.Add(step), symbols, nodes, visiting, cancellationToken);
            }
        }

        visiting.Remove(type.OriginalDefinition);
    }

    private static void AddModule(INamedTypeSymbol type, ImmutableArray<AccessStep> steps, LoraSymbols symbols,
        ImmutableArray<ModuleNode>.Builder nodes, HashSet<ITypeSymbol> visiting, CancellationToken cancellationToken)
    {
        var kind = Classify(type, symbols);
        nodes.Add(new ModuleNode(new EquatableArray<AccessStep>(steps), kind, type.Name));
        if (symbols.AsModuleList(type) is { } list && list.TypeArguments[0] is INamedTypeSymbol element)
        {
            var index = new AccessStep(string.Empty, string.Empty, IsListIndex: true, IsNullable: false);
            AddModule(element, steps.Add(index), symbols, nodes, visiting, cancellationToken);
            return;
        }

        if (kind == ModuleKind.Container)
            WalkFields(type, steps, symbols, nodes, visiting, cancellationToken);
    }

    private static ModuleKind Classify(INamedTypeSymbol type, LoraSymbols symbols)
    {
        if (LoraSymbols.DerivesFrom(type, symbols.Conv1D))
            return ModuleKind.Conv1D;
        if (LoraSymbols.DerivesFrom(type, symbols.LinearLayer))
            return ModuleKind.Linear;
        if (LoraSymbols.DerivesFrom(type, symbols.EmbeddingLayer))
            return ModuleKind.Embedding;
        if (symbols.AsModuleList(type) is not null)
            return ModuleKind.Container;
        return IsTorchSharpType(type, symbols) ? ModuleKind.Other : ModuleKind.Container;
    }

    private static bool IsTorchSharpType(INamedTypeSymbol type, LoraSymbols symbols) =>
        symbols.Module is not null && SymbolEqualityComparer.Default.Equals(type.ContainingAssembly, symbols.Module.ContainingAssembly);

    private static string HfName(IFieldSymbol field, LoraSymbols symbols)
    {
        foreach (var attribute in field.GetAttributes())
        {
            if (!SymbolEqualityComparer.Default.Equals(attribute.AttributeClass, symbols.ComponentNameAttribute))
                continue;
            foreach (var named in attribute.NamedArguments)
            {
                if (named.Key == "Name" && named.Value.Value is string name && name.Length > 0)
                    return name;
            }
        }

        return field.Name;
    }
}
