using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using Lora.Generators.Helpers;
using Lora.Generators.Model;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Analysis;

/// <summary>What a module is, as far as adapters are concerned.</summary>
internal enum ModuleKind
{
    /// <summary>A module the walk descends into (an attention block, a decoder layer, a <c>ModuleList</c>).</summary>
    Container,

    /// <summary>A layer that hosts adapters (implements <c>Lora.Peft.IAdapterHost&lt;TAdapter&gt;</c>): a leaf.</summary>
    Host,

    /// <summary>Any other leaf (norms, dropout, TorchSharp modules): not adaptable.</summary>
    Other,
}

/// <summary>A module of the tree: the steps from the root, its kind, the adapter kind it hosts (the metadata name of
/// <c>TAdapter</c>, e.g. <c>Lora.Peft.LinearAdapter</c>; empty when not a host), and its C# type name (for messages).</summary>
internal sealed record ModuleNode(EquatableArray<AccessStep> Steps, ModuleKind Kind, string HostKind, string TypeName)
{
    public bool IsHost => Kind == ModuleKind.Host;

    /// <summary>Can host an adapter of one of <paramref name="kinds"/>.</summary>
    public bool Hosts(ImmutableArray<string> kinds) => IsHost && kinds.Contains(HostKind);

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
/// The module tree of a model type (<see cref="Nodes"/>, in registration order) and the resolutions of the plans
/// already resolved against it: a tree is shared by every model over the same base type, and a plan written on many
/// models (the same Targets, ModulesToSave and LayersToTransform) is resolved once.
/// </summary>
internal sealed class ModuleTree
{
    private const int MaxCachedResolutions = 256;

    private readonly ConcurrentDictionary<string, TargetResolution> _resolutions = new(StringComparer.Ordinal);
    private readonly INamedTypeSymbol?[] _builtWith;

    internal ModuleTree(ImmutableArray<ModuleNode> nodes, bool hasCycle, HashSet<ITypeSymbol> walked, LoraSymbols symbols)
    {
        Nodes = nodes;
        HasCycle = hasCycle;
        Walked = walked;
        _builtWith = BuiltWithOf(symbols);
    }

    public ImmutableArray<ModuleNode> Nodes { get; }

    /// <summary>The walk was cut short by a type containing itself.</summary>
    internal bool HasCycle { get; }

    /// <summary>Every (original definition) type whose fields the walk visited.</summary>
    internal HashSet<ITypeSymbol> Walked { get; }

    /// <summary><see cref="TargetResolver.Resolve"/> on this tree, memoized by the plan's values.</summary>
    public TargetResolution Resolve(string pattern, IReadOnlyList<string> modulesToSave, IReadOnlyList<int>? layersToTransform, ImmutableArray<string> kinds)
    {
        var key = pattern + "\0" + string.Join("\u0001", modulesToSave) + "\0"
            + (layersToTransform is null ? "-" : string.Join(",", layersToTransform.Select(i => i.ToString(CultureInfo.InvariantCulture))))
            + "\0" + string.Join("\u0001", kinds);
        if (_resolutions.TryGetValue(key, out var cached))
            return cached;
        var resolution = TargetResolver.Resolve(Nodes, pattern, modulesToSave, layersToTransform, kinds);
        if (_resolutions.Count >= MaxCachedResolutions)
            _resolutions.Clear();
        return _resolutions.GetOrAdd(key, resolution);
    }

    /// <summary>The tree depends on these runtime types; a cached tree is reused only by a compilation that sees the
    /// same ones.</summary>
    internal bool BuiltWith(LoraSymbols symbols)
    {
        var current = BuiltWithOf(symbols);
        for (var i = 0; i < current.Length; i++)
        {
            if (!SymbolEqualityComparer.Default.Equals(current[i], _builtWith[i]))
                return false;
        }

        return true;
    }

    private static INamedTypeSymbol?[] BuiltWithOf(LoraSymbols symbols) =>
        new[] { symbols.Module, symbols.ModuleList, symbols.AdapterHost, symbols.ComponentNameAttribute };
}

/// <summary>
/// Walks the module tree of a model type at compile time: public instance fields (declared or inherited, in any
/// assembly) whose type derives from TorchSharp's <c>nn.Module</c>, named by <c>[ComponentName(Name = ...)]</c> or
/// the field name, descending through <c>ModuleList&lt;T&gt;</c> element types. Adapter hosts (linear layers, embedding
/// tables: whatever implements <c>IAdapterHost&lt;T&gt;</c>) and TorchSharp's own modules are leaves.
/// </summary>
internal static class ModuleTreeBuilder
{
    private const int MaxDepth = 32;

    /// <summary>Trees already built, keyed by the base type a model inherits its modules from. Metadata base types
    /// (the built-in architectures) are the same symbols in every compilation over the same references, so an edit
    /// rebuilds nothing; source base types live as long as their compilation.</summary>
    private static readonly ConditionalWeakTable<INamedTypeSymbol, ModuleTree> Cache = new();

    private static readonly object CacheLock = new();

    /// <summary>The module tree of <paramref name="root"/>. A model that declares no module field of its own has
    /// exactly its base type's tree, walked once and shared (with its resolutions) by every model and analyzer run
    /// over that base.</summary>
    public static ModuleTree Build(INamedTypeSymbol root, LoraSymbols symbols, CancellationToken cancellationToken)
    {
        var baseType = root.BaseType;
        if (baseType is null || IsTorchSharpType(root, symbols) || DeclaresModuleField(root, symbols))
            return Walk(root, symbols, cancellationToken);

        ModuleTree? tree;
        lock (CacheLock)
        {
            if (Cache.TryGetValue(baseType, out tree) && !tree.BuiltWith(symbols))
            {
                Cache.Remove(baseType);
                tree = null;
            }
        }

        if (tree is null)
        {
            tree = Walk(baseType, symbols, cancellationToken);
            lock (CacheLock)
            {
                if (Cache.TryGetValue(baseType, out var existing) && existing.BuiltWith(symbols))
                    tree = existing;
                else
                {
                    Cache.Remove(baseType);
                    Cache.Add(baseType, tree);
                }
            }
        }

        // The base's walk equals the model's only if it never met a cycle (the visited set differs by the root) and
        // never reached the model type itself (the model's walk stops there); otherwise walk the model directly.
        return tree.HasCycle || tree.Walked.Contains(root.OriginalDefinition) ? Walk(root, symbols, cancellationToken) : tree;
    }

    /// <summary>The walk from <paramref name="root"/> itself, no cache (what <see cref="Build"/> must equal).</summary>
    internal static ModuleTree Walk(INamedTypeSymbol root, LoraSymbols symbols, CancellationToken cancellationToken)
    {
        var walk = new WalkState(symbols);
        WalkFields(root, ImmutableArray<AccessStep>.Empty, walk, cancellationToken);
        return new ModuleTree(walk.Nodes.ToImmutable(), walk.HasCycle, walk.Walked, symbols);
    }

    private static bool DeclaresModuleField(INamedTypeSymbol type, LoraSymbols symbols)
    {
        foreach (var member in type.GetMembers())
        {
            if (member is IFieldSymbol field && IsModuleField(field, symbols, out _))
                return true;
        }

        return false;
    }

    private static bool IsModuleField(IFieldSymbol field, LoraSymbols symbols, out INamedTypeSymbol fieldType)
    {
        fieldType = null!;
        if (field.IsStatic || field.IsConst || field.IsImplicitlyDeclared || field.DeclaredAccessibility != Accessibility.Public)
            return false;
        if (field.Type is not INamedTypeSymbol named || !LoraSymbols.DerivesFrom(named, symbols.Module))
            return false;
        fieldType = named;
        return true;
    }

    private sealed class WalkState
    {
        public WalkState(LoraSymbols symbols) => Symbols = symbols;

        public LoraSymbols Symbols { get; }

        public ImmutableArray<ModuleNode>.Builder Nodes { get; } = ImmutableArray.CreateBuilder<ModuleNode>();

        /// <summary>Types on the current path (cycle guard).</summary>
        public HashSet<ITypeSymbol> Visiting { get; } = new(SymbolEqualityComparer.Default);

        /// <summary>Every type whose fields were walked.</summary>
        public HashSet<ITypeSymbol> Walked { get; } = new(SymbolEqualityComparer.Default);

        public bool HasCycle { get; set; }
    }

    private static void WalkFields(INamedTypeSymbol type, ImmutableArray<AccessStep> prefix, WalkState walk, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (prefix.Length > MaxDepth)
            return;
        if (!walk.Visiting.Add(type.OriginalDefinition))
        {
            walk.HasCycle = true;
            return;
        }

        walk.Walked.Add(type.OriginalDefinition);
        var symbols = walk.Symbols;

        // Base types first, as TorchSharp registers them; stop at TorchSharp's own types.
        var chain = new List<INamedTypeSymbol>();
        for (var t = type; t is not null && !IsTorchSharpType(t, symbols); t = t.BaseType)
            chain.Add(t);
        chain.Reverse();

        foreach (var declaring in chain)
        {
            foreach (var field in declaring.GetMembers().OfType<IFieldSymbol>())
            {
                if (!IsModuleField(field, symbols, out var fieldType))
                    continue;
                var step = new AccessStep(field.Name, HfName(field, symbols), IsListIndex: false,
                    IsNullable: field.NullableAnnotation == NullableAnnotation.Annotated);
                AddModule(fieldType, prefix.Add(step), walk, cancellationToken);
            }
        }

        walk.Visiting.Remove(type.OriginalDefinition);
    }

    private static void AddModule(INamedTypeSymbol type, ImmutableArray<AccessStep> steps, WalkState walk, CancellationToken cancellationToken)
    {
        var symbols = walk.Symbols;
        var hostKind = symbols.HostKindOf(type);
        var kind = hostKind is not null ? ModuleKind.Host : Classify(type, symbols);
        walk.Nodes.Add(new ModuleNode(new EquatableArray<AccessStep>(steps), kind, hostKind ?? string.Empty, type.Name));
        if (symbols.AsModuleList(type) is { } list && list.TypeArguments[0] is INamedTypeSymbol element)
        {
            var index = new AccessStep(string.Empty, string.Empty, IsListIndex: true, IsNullable: false);
            AddModule(element, steps.Add(index), walk, cancellationToken);
            return;
        }

        if (kind == ModuleKind.Container)
            WalkFields(type, steps, walk, cancellationToken);
    }

    private static ModuleKind Classify(INamedTypeSymbol type, LoraSymbols symbols)
    {
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
