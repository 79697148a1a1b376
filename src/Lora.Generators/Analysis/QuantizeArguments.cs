using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Lora.Generators.Analysis;

/// <summary>
/// The arguments of a <c>[Quantize(type, ...)]</c> attribute, as written, and where each is written (for diagnostics):
/// the constructor's <c>type</c> (<see cref="Type"/>) and the named arguments (<c>DoubleQuant</c>, <c>Blocksize</c>,
/// <c>Compute</c>, <c>Int8Threshold</c>, <c>SkipModules</c>); defaults as in the attribute class.
/// </summary>
internal sealed class QuantizeArguments
{
    /// <summary>The constructor parameter's name, used as the key of its location.</summary>
    public const string TypeArgument = "type";

    private readonly Dictionary<string, TypedConstant> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Location> _locations = new(StringComparer.Ordinal);

    private QuantizeArguments(AttributeData data) => Data = data;

    public AttributeData Data { get; }

    /// <summary>The attribute class (<c>Lora.QuantizeAttribute</c>).</summary>
    public INamedTypeSymbol AttributeType => Data.AttributeClass!;

    /// <summary>The constructor argument (the quantization type), or null when it does not bind.</summary>
    public TypedConstant? Type =>
        Data.ConstructorArguments.Length == 1 && Data.ConstructorArguments[0].Kind == TypedConstantKind.Enum ? Data.ConstructorArguments[0] : null;

    /// <summary>The quantization type's member name (<c>Nf4</c>, <c>Fp4</c>, <c>Int8</c>), or null when it is not
    /// known at build time (no argument, one that does not bind, or a value that is no member).</summary>
    public string? TypeName => Type is { } type ? EnumMemberName(type) : null;

    /// <summary>True for <c>Int8</c> (LLM.int8()); the 4-bit settings mean nothing then.</summary>
    public bool IsInt8 => TypeName == "Int8";

    /// <summary>True for <c>Nf4</c> and <c>Fp4</c>; the int8 settings mean nothing then.</summary>
    public bool IsFourBit => TypeName is "Nf4" or "Fp4";

    /// <summary>The named arguments in source order.</summary>
    public IEnumerable<KeyValuePair<string, TypedConstant>> Named => Data.NamedArguments;

    /// <summary>The attribute as written (the whole <c>Quantize(...)</c>), or null for metadata-only attributes.</summary>
    public Location? AttributeLocation { get; private set; }

    /// <summary>The argument's value expression (<see cref="TypeArgument"/> for the constructor's), else the attribute.</summary>
    public Location? LocationOf(string argument) =>
        _locations.TryGetValue(argument, out var location) ? location : AttributeLocation;

    public bool Has(string name) => _values.ContainsKey(name);

    public int Int(string name, int fallback) => _values.TryGetValue(name, out var v) && v.Value is int i ? i : fallback;

    public double Double(string name, double fallback) => _values.TryGetValue(name, out var v) && v.Value is double d ? d : fallback;

    public bool Bool(string name, bool fallback) => _values.TryGetValue(name, out var v) && v.Value is bool b ? b : fallback;

    /// <summary>An enum argument's member name (<c>BFloat16</c>), its number when it is no member, or null when the
    /// argument is not written or does not bind.</summary>
    public string? Enum(string name) =>
        _values.TryGetValue(name, out var v) && v.Kind == TypedConstantKind.Enum ? EnumMemberName(v) ?? Convert.ToString(v.Value, CultureInfo.InvariantCulture) : null;

    /// <summary>The argument as written in messages (<c>Blocksize = 100</c>, <c>Compute = ScalarType.Float64</c>).</summary>
    public string Written(string name)
    {
        if (!_values.TryGetValue(name, out var v))
            return name;
        var value = v.Kind == TypedConstantKind.Enum
            ? (v.Type?.Name ?? "enum") + "." + (EnumMemberName(v) ?? Convert.ToString(v.Value, CultureInfo.InvariantCulture))
            : v.Value switch
            {
                bool b => b ? "true" : "false",
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                string s => "\"" + s + "\"",
                null => "null",
                var other => Convert.ToString(other, CultureInfo.InvariantCulture),
            };
        return name + " = " + value;
    }

    public static QuantizeArguments Read(AttributeData data)
    {
        var result = new QuantizeArguments(data);
        foreach (var pair in data.NamedArguments)
            result._values[pair.Key] = pair.Value;

        if (data.ApplicationSyntaxReference?.GetSyntax() is AttributeSyntax syntax)
        {
            result.AttributeLocation = syntax.GetLocation();
            var positional = 0;
            foreach (var argument in syntax.ArgumentList?.Arguments ?? default)
            {
                if (argument.NameEquals is { } nameEquals)
                    result._locations[nameEquals.Name.Identifier.ValueText] = argument.Expression.GetLocation();
                else if (argument.NameColon is not null || positional++ == 0)
                    result._locations[TypeArgument] = argument.Expression.GetLocation();
            }
        }

        return result;
    }

    private static string? EnumMemberName(TypedConstant value)
    {
        if (value.Type is not INamedTypeSymbol type || value.Value is null)
            return null;
        var number = Convert.ToInt64(value.Value, CultureInfo.InvariantCulture);
        return type.GetMembers().OfType<IFieldSymbol>()
            .FirstOrDefault(f => f.HasConstantValue && Convert.ToInt64(f.ConstantValue, CultureInfo.InvariantCulture) == number)?.Name;
    }
}
