using System.Runtime.CompilerServices;
using Lora.Generators.Helpers;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Analysis;

/// <summary>The runtime types a compilation sees, looked up by metadata name (any may be missing, e.g. when the
/// project does not reference Lora.Runtime).</summary>
internal sealed class LoraSymbols
{
    private LoraSymbols(Compilation compilation)
    {
        LoraAttribute = compilation.GetTypeByMetadataName(WellKnownMetadataNames.LoraAttribute);
        CausalLM = compilation.GetTypeByMetadataName(WellKnownMetadataNames.CausalLM);
        ModelConfig = compilation.GetTypeByMetadataName(WellKnownMetadataNames.ModelConfig);
        LinearLayer = compilation.GetTypeByMetadataName(WellKnownMetadataNames.LinearLayer);
        Conv1D = compilation.GetTypeByMetadataName(WellKnownMetadataNames.Conv1D);
        EmbeddingLayer = compilation.GetTypeByMetadataName(WellKnownMetadataNames.EmbeddingLayer);
        Module = compilation.GetTypeByMetadataName(WellKnownMetadataNames.Module);
        ModuleList = compilation.GetTypeByMetadataName(WellKnownMetadataNames.ModuleList);
        ComponentNameAttribute = compilation.GetTypeByMetadataName(WellKnownMetadataNames.ComponentNameAttribute);
        ScalarType = compilation.GetTypeByMetadataName(WellKnownMetadataNames.ScalarType);
        Device = compilation.GetTypeByMetadataName(WellKnownMetadataNames.Device);
    }

    public INamedTypeSymbol? LoraAttribute { get; }

    public INamedTypeSymbol? CausalLM { get; }

    public INamedTypeSymbol? ModelConfig { get; }

    public INamedTypeSymbol? LinearLayer { get; }

    public INamedTypeSymbol? Conv1D { get; }

    public INamedTypeSymbol? EmbeddingLayer { get; }

    public INamedTypeSymbol? Module { get; }

    public INamedTypeSymbol? ModuleList { get; }

    public INamedTypeSymbol? ComponentNameAttribute { get; }

    public INamedTypeSymbol? ScalarType { get; }

    public INamedTypeSymbol? Device { get; }

    private static readonly ConditionalWeakTable<Compilation, LoraSymbols> Cache = new();

    /// <summary>The symbols of <paramref name="compilation"/>, looked up once per compilation (the generator's transform
    /// runs once per [Lora] class, the analyzers once per compilation).</summary>
    public static LoraSymbols Create(Compilation compilation) => Cache.GetValue(compilation, static c => new LoraSymbols(c));

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
}
