using System.Text.RegularExpressions;

namespace Lora.Peft;

/// <summary>
/// Which modules get adapters. PEFT's <c>target_modules</c> forms: a list of names — a module matches when its dotted
/// path equals a name or ends with <c>"." + name</c> —, one regular expression that must match the whole dotted path
/// (Python <c>re.fullmatch</c>), or the <c>all-linear</c> shorthand (every linear layer except the output head).
/// Plus this product's form, used by <c>[Lora(Targets = ...)]</c> and <c>lora train --targets</c>: a .NET regex that
/// must fully match either the module's leaf name or its full dotted path (so <c>q_proj|v_proj</c> selects every
/// q_proj and v_proj). PEFT cannot express that form, so adapters are saved with the resolved list instead.
/// </summary>
public sealed class TargetModules
{
    public const string AllLinearShorthand = "all-linear";

    private readonly Regex? _regex;

    private TargetModules(IReadOnlyList<string>? names, string? pattern, bool allLinear, string? leafOrPathPattern = null)
    {
        Names = names;
        Pattern = pattern;
        IsAllLinear = allLinear;
        LeafOrPathPattern = leafOrPathPattern;
        if (pattern is not null)
            _regex = PythonRegex.FullMatch(pattern);
        if (leafOrPathPattern is not null)
            _regex = LeafOrPathRegex(leafOrPathPattern);
    }

    /// <summary>The product's leaf-or-path regex form (null otherwise).</summary>
    public string? LeafOrPathPattern { get; }

    /// <summary>True when the form is one PEFT's adapter_config.json can hold as is.</summary>
    public bool IsPeftForm => LeafOrPathPattern is null && !IsAllLinear;

    /// <summary>A .NET regex that must fully match a module's leaf name or its full dotted path.</summary>
    public static TargetModules FromLeafOrPathRegex(string pattern) =>
        string.Equals(pattern, AllLinearShorthand, StringComparison.OrdinalIgnoreCase)
            ? AllLinear
            : new TargetModules(null, null, false, pattern);

    /// <summary>The anchored .NET regex of the leaf-or-path form (what the source generator checks at build time).</summary>
    public static Regex LeafOrPathRegex(string pattern) => PythonRegex.Anchored($"^(?:{pattern})$", pattern);

    /// <summary>The list form (null for the regex form).</summary>
    public IReadOnlyList<string>? Names { get; }

    /// <summary>The regex form, as written (Python syntax).</summary>
    public string? Pattern { get; }

    public bool IsAllLinear { get; }

    public static TargetModules FromNames(IEnumerable<string> names) => new(names.ToList(), null, false);

    /// <summary>A pattern; <c>all-linear</c> (any case) becomes the shorthand.</summary>
    public static TargetModules FromPattern(string pattern) =>
        string.Equals(pattern, AllLinearShorthand, StringComparison.OrdinalIgnoreCase)
            ? new TargetModules(null, null, true)
            : new TargetModules(null, pattern, false);

    public static TargetModules AllLinear { get; } = new(null, null, true);

    /// <summary>Does the module at <paramref name="path"/> match? (<c>all-linear</c> matches every path; callers
    /// restrict it to linear layers and drop the output head.)</summary>
    public bool Matches(string path)
    {
        if (IsAllLinear)
            return true;
        if (LeafOrPathPattern is not null)
            return _regex!.IsMatch(path) || _regex.IsMatch(path[(path.LastIndexOf('.') + 1)..]);
        if (_regex is not null)
            return _regex.IsMatch(path);
        return Names!.Any(n => path == n || path.EndsWith("." + n, StringComparison.Ordinal));
    }

    /// <summary>
    /// The alternatives of these targets — the names of a list, the top-level alternatives of a regex
    /// (<see cref="RegexAlternatives"/>) — that select none of <paramref name="adaptedPaths"/>, when there are several:
    /// a misspelt name such as <c>v_projj</c> in <c>q_proj,v_projj</c>, which PEFT accepts without a word (it raises
    /// only when nothing matches, <c>BaseTuner.inject_adapter</c>) and the CLI warns about. Empty for <c>all-linear</c>
    /// and for a single alternative (which, matching nothing, is an error already).
    /// </summary>
    public IReadOnlyList<string> Unmatched(IEnumerable<string> adaptedPaths)
    {
        var paths = adaptedPaths.ToList();
        var parts = IsAllLinear ? []
            : Names is not null ? Names.Select(n => (Text: n, Alone: (TargetModules?)FromNames([n]))).ToList()
            : RegexAlternatives.TopLevel(LeafOrPathPattern ?? Pattern!).Select(a => (Text: a, Alone: Alone(a))).ToList();
        return parts.Count < 2 ? [] : parts.Where(p => p.Alone is { } alone && !paths.Any(alone.Matches)).Select(p => p.Text).ToList();

        TargetModules? Alone(string alternative)
        {
            try
            {
                return LeafOrPathPattern is not null ? FromLeafOrPathRegex(alternative) : FromPattern(alternative);
            }
            catch (ArgumentException)
            {
                return null; // not a regex on its own: say nothing about it
            }
        }
    }

    public override string ToString() => IsAllLinear ? AllLinearShorthand : LeafOrPathPattern ?? Pattern ?? string.Join(",", Names!);
}

/// <summary>Python <c>re</c> patterns in .NET: named groups <c>(?P&lt;n&gt;…)</c> / <c>(?P=n)</c> are translated and the
/// match is anchored like <c>re.fullmatch</c> (<c>^(?:…)\z</c>).</summary>
public static class PythonRegex
{
    public static Regex FullMatch(string pattern)
    {
        var translated = pattern.Replace("(?P<", "(?<", StringComparison.Ordinal);
        translated = Regex.Replace(translated, @"\(\?P=(\w+)\)", @"\k<$1>");
        translated = translated.Replace(@"\Z", @"\z", StringComparison.Ordinal);
        return Anchored($"^(?:{translated})\\z", pattern);
    }

    /// <summary>Compiles an already anchored pattern; a bad one is an error naming the user's <paramref name="original"/>.</summary>
    internal static Regex Anchored(string anchored, string original)
    {
        try
        {
            return new Regex(anchored, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw new LoraException($"Invalid target regex '{original}': {e.Message}", e);
        }
    }
}
