using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Lora.Generators.Analysis;

/// <summary>
/// The named arguments of one plan attribute (<c>[Lora(...)]</c>, <c>[IA3(...)]</c>), as written, and where each is
/// written (for diagnostics). The shared ones (<c>Targets</c>, <c>AdapterName</c>, <c>ModulesToSave</c>) have typed
/// accessors; a method's rules read their own with <see cref="Int"/>, <see cref="Double"/>, ... (defaults as in the
/// attribute class).
/// </summary>
internal sealed class PlanArguments
{
    private readonly Dictionary<string, TypedConstant> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Location> _locations = new(StringComparer.Ordinal);

    private PlanArguments(AttributeData data, PlanAttributeSymbol plan)
    {
        Data = data;
        Plan = plan;
    }

    public AttributeData Data { get; }

    /// <summary>The attribute type and its method's rules.</summary>
    public PlanAttributeSymbol Plan { get; }

    /// <summary>The attribute as written in messages: <c>[Lora]</c>, <c>[IA3]</c>.</summary>
    public string Display => "[" + Plan.Kind.DisplayName + "]";

    /// <summary>The named arguments in source order.</summary>
    public IEnumerable<KeyValuePair<string, TypedConstant>> Named => Data.NamedArguments;

    public string? Targets => String("Targets");

    public string AdapterName => _values.TryGetValue("AdapterName", out var v) ? v.Value as string ?? string.Empty : "default";

    /// <summary><c>ModulesToSave</c>, elements split at <c>'|'</c> and trimmed.</summary>
    public IReadOnlyList<string> ModulesToSave =>
        _values.TryGetValue("ModulesToSave", out var v) && v.Kind == TypedConstantKind.Array && !v.IsNull
            ? v.Values.Select(x => x.Value as string).SelectMany(s => (s ?? string.Empty).Split('|')).Select(s => s.Trim()).Where(s => s.Length > 0).ToList()
            : Array.Empty<string>();

    /// <summary>The attribute as written (the whole <c>Lora(...)</c>), or null for metadata-only attributes.</summary>
    public Location? AttributeLocation { get; private set; }

    /// <summary>The named argument's value expression, else the attribute.</summary>
    public Location? LocationOf(string argument) =>
        _locations.TryGetValue(argument, out var location) ? location : AttributeLocation;

    public bool Has(string name) => _values.ContainsKey(name);

    public string? String(string name) => _values.TryGetValue(name, out var v) ? v.Value as string : null;

    public int Int(string name, int fallback) => _values.TryGetValue(name, out var v) && v.Value is int i ? i : fallback;

    public double Double(string name, double fallback) => _values.TryGetValue(name, out var v) && v.Value is double d ? d : fallback;

    public bool Bool(string name, bool fallback) => _values.TryGetValue(name, out var v) && v.Value is bool b ? b : fallback;

    /// <summary>An <c>int[]</c> argument (null when not written or null); non-int elements read as -1.</summary>
    public IReadOnlyList<int>? IntArray(string name) =>
        _values.TryGetValue(name, out var v) && v.Kind == TypedConstantKind.Array && !v.IsNull
            ? v.Values.Select(x => x.Value is int i ? i : -1).ToList()
            : null;

    public static PlanArguments Read(AttributeData data, PlanAttributeSymbol plan)
    {
        var result = new PlanArguments(data, plan);
        foreach (var pair in data.NamedArguments)
            result._values[pair.Key] = pair.Value;

        if (data.ApplicationSyntaxReference?.GetSyntax() is AttributeSyntax syntax)
        {
            result.AttributeLocation = syntax.GetLocation();
            foreach (var argument in syntax.ArgumentList?.Arguments ?? default)
            {
                if (argument.NameEquals is { } nameEquals)
                    result._locations[nameEquals.Name.Identifier.ValueText] = argument.Expression.GetLocation();
            }
        }

        return result;
    }
}
