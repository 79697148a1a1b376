using System.Text.RegularExpressions;

namespace Lora.Peft;

/// <summary>
/// PEFT's <c>layers_to_transform</c> / <c>layers_pattern</c>: only modules inside the listed layer indices are
/// adapted. The index is the first number after <c>.{pattern}.</c> in the dotted path (any segment when no pattern
/// is given), e.g. 3 in <c>model.layers.3.self_attn.q_proj</c>. PEFT applies this to the list form of
/// target_modules only.
/// </summary>
public sealed record LayerSelection(IReadOnlyList<int> Layers, IReadOnlyList<string> Patterns)
{
    public bool Includes(string path)
    {
        var index = LayerIndex(path, Patterns);
        return index is { } i && Layers.Contains(i);
    }

    /// <summary>The layer index of <paramref name="path"/>, or null when it is in no numbered layer.</summary>
    public static int? LayerIndex(string path, IReadOnlyList<string> patterns)
    {
        if (patterns.Count == 0)
            return Parse(Regex.Match(path, @"^.*?\.[^.]*\.(\d+)\."));
        foreach (var pattern in patterns)
        {
            var m = Regex.Match(path, $@"^.*?\.{pattern}\.(\d+)\.");
            if (m.Success)
                return Parse(m);
        }

        return null;
    }

    private static int? Parse(Match m) => m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
}
