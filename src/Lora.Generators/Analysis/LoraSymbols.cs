using System.Collections.Immutable;
using System.Linq;
using System.Runtime.CompilerServices;
using Lora.Generators.Analysis.Methods;
using Lora.Generators.Helpers;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Analysis;

/// <summary>The runtime types a compilation sees, looked up by metadata name (any may be missing, e.g. when the
/// project does not reference Lora.Runtime).</summary>
internal sealed class LoraSymbols
{
    private LoraSymbols(Compilation compilation)
    {
        PlanAttributes = PlanKinds.All
            .Select(kind => (Kind: kind, Symbol: compilation.GetTypeByMetadataName(kind.AttributeMetadataName)))
            .Where(p => p.Symbol is not null)
            .Select(p => new PlanAttributeSymbol(p.Kind, p.Symbol!))
            .ToImmutableArray();
        AdaptsAttribute = compilation.GetTypeByMetadataName(WellKnownMetadataNames.AdaptsAttribute);
        QuantizeAttribute = compilation.GetTypeByMetadataName(WellKnownMetadataNames.QuantizeAttribute);
        QuantizationConfig = compilation.GetTypeByMetadataName(WellKnownMetadataNames.QuantizationConfig);
        AdapterHost = compilation.GetTypeByMetadataName(WellKnownMetadataNames.AdapterHost);
        CausalLM = compilation.GetTypeByMetadataName(WellKnownMetadataNames.CausalLM);
        ModelConfig = compilation.GetTypeByMetadataName(WellKnownMetadataNames.ModelConfig);
        Module = compilation.GetTypeByMetadataName(WellKnownMetadataNames.Module);
        ModuleList = compilation.GetTypeByMetadataName(WellKnownMetadataNames.ModuleList);
        ComponentNameAttribute = compilation.GetTypeByMetadataName(WellKnownMetadataNames.ComponentNameAttribute);
        ScalarType = compilation.GetTypeByMetadataName(WellKnownMetadataNames.ScalarType);
        Device = compilation.GetTypeByMetadataName(WellKnownMetadataNames.Device);
    }

    /// <summary>The plan attributes this compilation references, with their method's rules.</summary>
    public ImmutableArray<PlanAttributeSymbol> PlanAttributes { get; }

    /// <summary>True when the runtime's plan attributes are visible (the project references Lora.Runtime).</summary>
    public bool HasRuntime => !PlanAttributes.IsEmpty;

    public INamedTypeSymbol? AdaptsAttribute { get; }

    /// <summary><c>Lora.QuantizeAttribute</c>: the class loads quantized (QLoRA); read beside the plan attributes.</summary>
    public INamedTypeSymbol? QuantizeAttribute { get; }

    /// <summary><c>Lora.Quantization.QuantizationConfig</c>: the last parameter of <c>FromPretrained</c>.</summary>
    public INamedTypeSymbol? QuantizationConfig { get; }

    /// <summary><c>Lora.Peft.IAdapterHost&lt;TAdapter&gt;</c>: how a layer's adapter kind is told.</summary>
    public INamedTypeSymbol? AdapterHost { get; }

    public INamedTypeSymbol? CausalLM { get; }

    public INamedTypeSymbol? ModelConfig { get; }

    public INamedTypeSymbol? Module { get; }

    public INamedTypeSymbol? ModuleList { get; }

    public INamedTypeSymbol? ComponentNameAttribute { get; }

    public INamedTypeSymbol? ScalarType { get; }

    public INamedTypeSymbol? Device { get; }

    private static readonly ConditionalWeakTable<Compilation, LoraSymbols> Cache = new();

    /// <summary>The symbols of <paramref name="compilation"/>, looked up once per compilation (the generator's transform
    /// runs once per plan class, the analyzers once per compilation).</summary>
    public static LoraSymbols Create(Compilation compilation) => Cache.GetValue(compilation, static c => new LoraSymbols(c));

    /// <summary>The plan attribute <paramref name="attribute"/> is an instance of, or null.</summary>
    public PlanAttributeSymbol? PlanAttributeOf(AttributeData attribute)
    {
        foreach (var plan in PlanAttributes)
        {
            if (SymbolEqualityComparer.Default.Equals(attribute.AttributeClass, plan.Symbol))
                return plan;
        }

        return null;
    }

    /// <summary>The <c>[Quantize]</c> attribute on <paramref name="type"/>, or null.</summary>
    public AttributeData? QuantizeAttributeOf(INamedTypeSymbol type)
    {
        if (QuantizeAttribute is null)
            return null;
        foreach (var attribute in type.GetAttributes())
        {
            if (SymbolEqualityComparer.Default.Equals(attribute.AttributeClass, QuantizeAttribute))
                return attribute;
        }

        return null;
    }

    public static bool DerivesFrom(ITypeSymbol? type, INamedTypeSymbol? baseType)
    {
        if (baseType is null)
            return false;
        for (var t = type; t is not null; t = t.BaseType)
        {
            if (SymbolEqualityComparer.Default.Equals(t.OriginalDefinition, baseType))
                return true;
        }

        return false;
    }

    /// <summary>The <c>ModuleList&lt;T&gt;</c> base of <paramref name="type"/>, if any.</summary>
    public INamedTypeSymbol? AsModuleList(ITypeSymbol type)
    {
        for (var t = type as INamedTypeSymbol; t is not null; t = t.BaseType)
        {
            if (ModuleList is not null && SymbolEqualityComparer.Default.Equals(t.OriginalDefinition, ModuleList))
                return t;
        }

        return null;
    }

    /// <summary>The adapter kind a layer type hosts (the type argument of the <c>IAdapterHost&lt;T&gt;</c> it
    /// implements, metadata-named), or null when it hosts none.</summary>
    public string? HostKindOf(INamedTypeSymbol type)
    {
        if (AdapterHost is null)
            return null;
        foreach (var i in type.AllInterfaces)
        {
            if (SymbolEqualityComparer.Default.Equals(i.OriginalDefinition, AdapterHost) && i.TypeArguments[0] is INamedTypeSymbol kind)
                return kind.ToDisplayString();
        }

        return null;
    }

    /// <summary>Facts of plan attribute types, read once per type (a metadata symbol: shared by compilations over the
    /// same references).</summary>
    private static readonly ConditionalWeakTable<INamedTypeSymbol, StrongBox<ImmutableArray<string>>> AdaptedKinds = new();

    /// <summary>The adapter kinds a plan attribute's method provides (<c>[Adapts(typeof(...), ...)]</c>), first one first.</summary>
    public ImmutableArray<string> AdaptedKindsOf(INamedTypeSymbol attributeType)
    {
        return AdaptedKinds.GetValue(attributeType, t => new StrongBox<ImmutableArray<string>>(ReadAdaptedKinds(t))).Value;
    }

    private ImmutableArray<string> ReadAdaptedKinds(INamedTypeSymbol attributeType)
    {
        foreach (var attribute in attributeType.GetAttributes())
        {
            if (!SymbolEqualityComparer.Default.Equals(attribute.AttributeClass, AdaptsAttribute) || attribute.ConstructorArguments.Length != 1)
                continue;
            return attribute.ConstructorArguments[0].Values
                .Select(v => (v.Value as ITypeSymbol)?.ToDisplayString())
                .Where(n => n is not null)
                .Select(n => n!)
                .ToImmutableArray();
        }

        return ImmutableArray<string>.Empty;
    }
}

/// <summary>A plan attribute type of this compilation and the rules of its method.</summary>
internal sealed record PlanAttributeSymbol(PlanKind Kind, INamedTypeSymbol Symbol);
