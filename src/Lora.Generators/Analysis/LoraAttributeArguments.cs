using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Lora.Generators.Analysis;

/// <summary>The values of one <c>[Lora]</c> attribute (defaults as in <c>LoraAttribute</c>) and where each named
/// argument is written, for diagnostics.</summary>
internal sealed class LoraAttributeArguments
{
    private readonly Dictionary<string, Location> _locations = new(StringComparer.Ordinal);

    private LoraAttributeArguments(AttributeData data) => Data = data;

    public AttributeData Data { get; }

    public int R { get; private set; } = 8;

    public double Alpha { get; private set; } = 8;

    public string? Targets { get; private set; }

    public double Dropout { get; private set; }

    public int Bias { get; private set; }

    public bool UseRsLora { get; private set; }

    public bool UseDora { get; private set; }

    public int Init { get; private set; }

    public string AdapterName { get; private set; } = "default";

    public IReadOnlyList<string> ModulesToSave { get; private set; } = Array.Empty<string>();

    public IReadOnlyList<int>? LayersToTransform { get; private set; }

    /// <summary>The attribute as written (the whole <c>Lora(...)</c>), or null for metadata-only attributes.</summary>
    public Location? AttributeLocation { get; private set; }

    /// <summary>The named argument's value expression, else the attribute.</summary>
    public Location? LocationOf(string argument) =>
        _locations.TryGetValue(argument, out var location) ? location : AttributeLocation;

    public static LoraAttributeArguments Read(AttributeData data)
    {
        var result = new LoraAttributeArguments(data);
        foreach (var pair in data.NamedArguments)
        {
            var value = pair.Value;
            switch (pair.Key)
            {
                case "R" when value.Value is int r:
                    result.R = r;
                    break;
                case "Alpha" when value.Value is double alpha:
                    result.Alpha = alpha;
                    break;
                case "Targets":
                    result.Targets = value.Value as string;
                    break;
                case "Dropout" when value.Value is double dropout:
                    result.Dropout = dropout;
                    break;
                case "Bias" when value.Value is int bias:
                    result.Bias = bias;
                    break;
                case "UseRsLora" when value.Value is bool rs:
                    result.UseRsLora = rs;
                    break;
                case "UseDora" when value.Value is bool dora:
                    result.UseDora = dora;
                    break;
                case "Init" when value.Value is int init:
                    result.Init = init;
                    break;
                case "AdapterName":
                    result.AdapterName = value.Value as string ?? string.Empty;
                    break;
                case "ModulesToSave" when value.Kind == TypedConstantKind.Array && !value.IsNull:
                    result.ModulesToSave = value.Values
                        .Select(v => v.Value as string)
                        .SelectMany(s => (s ?? string.Empty).Split('|'))
                        .Select(s => s.Trim())
                        .Where(s => s.Length > 0)
                        .ToList();
                    break;
                case "LayersToTransform" when value.Kind == TypedConstantKind.Array && !value.IsNull:
                    result.LayersToTransform = value.Values.Select(v => v.Value is int i ? i : -1).ToList();
                    break;
            }
        }

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
