using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;

namespace Lora.Generators.Analysis;

/// <summary>A module the targets select: <see cref="RuntimeCheck"/> when only some list indices match (the emitted
/// code checks the path at run time with the same regex); <see cref="LayerOrdinal"/> is the placeholder that is
/// PEFT's layer index (-1 when the module is in no numbered layer).</summary>
internal sealed record TargetMatch(ModuleNode Node, bool RuntimeCheck, int LayerOrdinal);

/// <summary>The outcome of resolving one plan against a module tree.</summary>
internal sealed class TargetResolution
{
    public string? RegexError { get; init; }

    /// <summary>Adaptable modules selected, ordinal by path template.</summary>
    public ImmutableArray<TargetMatch> Targets { get; init; } = ImmutableArray<TargetMatch>.Empty;

    /// <summary>Modules selected that cannot host the method (norms, dropout, containers, hosts of another adapter kind).</summary>
    public ImmutableArray<ModuleNode> NotAdaptable { get; init; } = ImmutableArray<ModuleNode>.Empty;

    /// <summary>Adaptable modules the regex selects but <c>LayersToTransform</c> leaves out because they are in no
    /// numbered layer.</summary>
    public ImmutableArray<ModuleNode> OutsideLayers { get; init; } = ImmutableArray<ModuleNode>.Empty;

    /// <summary>Leaf names of every layer hosting the method's first adapter kind (the linear layers), in tree order
    /// (for messages).</summary>
    public ImmutableArray<string> AvailableLeaves { get; init; } = ImmutableArray<string>.Empty;
}

/// <summary>
/// Resolves a plan (<c>[Lora]</c>, <c>[IA3]</c>, ...) against a module tree: a pure function of strings (no symbols),
/// shared by the generator's parser and the analyzers so that they always agree.
/// <para>
/// Semantics: <c>Targets</c> is a .NET regex that must fully match (<c>^(?:…)$</c>) a module's leaf name or its full
/// dotted path. List indices are symbolic at compile time; the regex is tried with every index in 0..63 plus every
/// number written in the pattern (for nested lists 0..7 plus those numbers). A module matched for all of them is a
/// static target; for some of them, a run-time-checked target; for none, not a target. A selected module must host an
/// adapter kind the method provides (<c>[Adapts]</c> on its attribute), else it is not adaptable. Modules named by
/// <c>ModulesToSave</c> are never targets (PEFT). With <c>LayersToTransform</c>, only modules inside a numbered layer
/// (the first list index after the second path segment, as PEFT reads it) are kept.
/// </para>
/// </summary>
internal static class TargetResolver
{
    public const int SampledIndices = 64;
    private const int SampledNestedIndices = 8;
    private const int MaxCombinations = 4096;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);

    /// <summary>The regex as the generated code builds it: anchored, culture-invariant.</summary>
    public static string Anchored(string pattern) => "^(?:" + pattern + ")$";

    private const int MaxCachedRegexes = 512;

    /// <summary>Each distinct pattern is parsed once per process (a <see cref="Regex"/> is safe to share across
    /// threads); the error text of an invalid one is kept too.</summary>
    private static readonly ConcurrentDictionary<string, (Regex? Regex, string? Error)> Regexes = new(StringComparer.Ordinal);

    public static Regex? TryCreateRegex(string pattern, out string? error)
    {
        if (!Regexes.TryGetValue(pattern, out var entry))
        {
            try
            {
                entry = (new Regex(Anchored(pattern), RegexOptions.CultureInvariant, Timeout), null);
            }
            catch (ArgumentException e)
            {
                entry = (null, e.Message);
            }

            if (Regexes.Count >= MaxCachedRegexes)
                Regexes.Clear();
            entry = Regexes.GetOrAdd(pattern, entry);
        }

        error = entry.Error;
        return entry.Regex;
    }

    /// <param name="nodes">The module tree.</param>
    /// <param name="pattern">The Targets regex.</param>
    /// <param name="modulesToSave">Never targets.</param>
    /// <param name="layersToTransform">Only these layer indices (null: all).</param>
    /// <param name="kinds">The adapter kinds the method provides; the first is the one messages list.</param>
    public static TargetResolution Resolve(ImmutableArray<ModuleNode> nodes, string pattern, IReadOnlyList<string> modulesToSave, IReadOnlyList<int>? layersToTransform, ImmutableArray<string> kinds)
    {
        var available = AvailableLeaves(nodes, kinds);
        if (string.Equals(pattern, AllLinear, StringComparison.OrdinalIgnoreCase))
            return ResolveAllLinear(nodes, modulesToSave, layersToTransform, kinds, available);
        var regex = TryCreateRegex(pattern, out var error);
        if (regex is null)
            return new TargetResolution { RegexError = error, AvailableLeaves = available };

        var mayMatchDot = MayMatchDot(pattern);
        var candidates = CandidateIndices(pattern, SampledIndices);
        var nestedCandidates = CandidateIndices(pattern, SampledNestedIndices);
        var targets = new List<TargetMatch>();
        var notAdaptable = new List<ModuleNode>();
        var outsideLayers = new List<ModuleNode>();
        try
        {
            foreach (var node in nodes)
            {
                var match = Evaluate(regex, mayMatchDot, node, node.PlaceholderCount > 1 ? nestedCandidates : candidates);
                if (match == MatchKind.Never || IsModuleToSave(node, modulesToSave))
                    continue;
                var layerOrdinal = LayerOrdinal(node);
                if (layersToTransform is not null && layerOrdinal < 0)
                {
                    if (node.Hosts(kinds))
                        outsideLayers.Add(node);
                    continue;
                }

                if (node.Hosts(kinds))
                    targets.Add(new TargetMatch(node, match == MatchKind.Sometimes, layerOrdinal));
                else
                    notAdaptable.Add(node);
            }
        }
        catch (RegexMatchTimeoutException)
        {
            return new TargetResolution { RegexError = "matching takes too long (catastrophic backtracking?)", AvailableLeaves = available };
        }

        targets.Sort((a, b) => string.CompareOrdinal(a.Node.PathTemplate, b.Node.PathTemplate));
        return new TargetResolution
        {
            Targets = targets.ToImmutableArray(),
            NotAdaptable = notAdaptable.ToImmutableArray(),
            OutsideLayers = outsideLayers.ToImmutableArray(),
            AvailableLeaves = available,
        };
    }

    /// <summary>The top-level alternatives of a regex (<c>"q_proj|v_proj"</c> → q_proj, v_proj), as the runtime reads
    /// them (<see cref="Lora.Peft.RegexAlternatives"/>, a file linked from Lora.Runtime).</summary>
    public static IReadOnlyList<string> TopLevelAlternatives(string pattern) => Lora.Peft.RegexAlternatives.TopLevel(pattern);

    /// <summary>PEFT's <c>all-linear</c> shorthand (<c>tuners_utils._maybe_include_all_linear_layers</c>).</summary>
    public const string AllLinear = "all-linear";

    /// <summary>The output head, which <c>all-linear</c> leaves out (PEFT excludes the output embedding layer).</summary>
    private const string OutputHead = "lm_head";

    /// <summary><c>all-linear</c>: every host of the method's first (linear) adapter kind except the output head,
    /// the modules to save, and (with <c>LayersToTransform</c>) modules in no numbered layer.</summary>
    private static TargetResolution ResolveAllLinear(ImmutableArray<ModuleNode> nodes, IReadOnlyList<string> modulesToSave, IReadOnlyList<int>? layersToTransform, ImmutableArray<string> kinds, ImmutableArray<string> available)
    {
        var targets = new List<TargetMatch>();
        var outsideLayers = new List<ModuleNode>();
        foreach (var node in nodes)
        {
            if (kinds.IsEmpty || !node.IsHost || node.HostKind != kinds[0] || node.PathTemplate == OutputHead || IsModuleToSave(node, modulesToSave))
                continue;
            var layerOrdinal = LayerOrdinal(node);
            if (layersToTransform is not null && layerOrdinal < 0)
                outsideLayers.Add(node);
            else
                targets.Add(new TargetMatch(node, false, layerOrdinal));
        }

        targets.Sort((a, b) => string.CompareOrdinal(a.Node.PathTemplate, b.Node.PathTemplate));
        return new TargetResolution { Targets = targets.ToImmutableArray(), OutsideLayers = outsideLayers.ToImmutableArray(), AvailableLeaves = available };
    }

    /// <summary>Leaf names of the hosts of <paramref name="kinds"/>' first kind, in tree order.</summary>
    public static ImmutableArray<string> AvailableLeaves(ImmutableArray<ModuleNode> nodes, ImmutableArray<string> kinds) =>
        kinds.IsEmpty
            ? ImmutableArray<string>.Empty
            : nodes.Where(n => n.IsHost && n.HostKind == kinds[0]).Select(n => n.Leaf ?? "{i}").Distinct(StringComparer.Ordinal).ToImmutableArray();

    /// <summary>PEFT's layer index of a module: the first list index at path segment 2 or later that is not the
    /// last segment (<c>LayerSelection.LayerIndex</c>: <c>^.*?\.[^.]*\.(\d+)\.</c>). Returns its placeholder
    /// ordinal, or -1.</summary>
    public static int LayerOrdinal(ModuleNode node)
    {
        var ordinal = 0;
        for (var i = 0; i < node.Steps.Length; i++)
        {
            if (!node.Steps[i].IsListIndex)
                continue;
            if (i >= 2 && i < node.Steps.Length - 1)
                return ordinal;
            ordinal++;
        }

        return -1;
    }

    /// <summary>PEFT's <c>modules_to_save</c> test: a module named <c>m</c> or inside it (<c>(^|.*\.)m($|\..*)</c>),
    /// checked on the path with list indices as 0.</summary>
    public static bool IsModuleToSave(ModuleNode node, IReadOnlyList<string> modulesToSave)
    {
        if (modulesToSave.Count == 0)
            return false;
        var path = Substitute(node, Enumerable.Repeat(0, node.PlaceholderCount).ToArray());
        var dotted = "." + path + ".";
        return modulesToSave.Any(m => dotted.IndexOf("." + m + ".", StringComparison.Ordinal) >= 0);
    }

    private enum MatchKind
    {
        Never,
        Sometimes,
        Always,
    }

    private static MatchKind Evaluate(Regex regex, bool mayMatchDot, ModuleNode node, IReadOnlyList<int> candidates)
    {
        var count = node.PlaceholderCount;
        if (count == 0)
        {
            var path = Substitute(node, Array.Empty<int>());
            return IsMatch(regex, path) ? MatchKind.Always : MatchKind.Never;
        }

        // The leaf name does not depend on the indices: when it matches, every index matches (the common case,
        // "q_proj|v_proj"), without trying the combinations.
        var leaf = node.Leaf;
        if (leaf is not null && regex.IsMatch(leaf))
            return MatchKind.Always;

        // The leaf does not match. When it is also the path's last segment (no dot in its name), only the full path
        // can match, and that has a dot (a list index is never the first step): a pattern that cannot match a dot
        // matches it for no index (the common leaf-list form), and otherwise only the path needs sampling.
        var leafIsLastSegment = leaf is not null && leaf.IndexOf('.') < 0;
        if (leafIsLastSegment && !mayMatchDot)
            return MatchKind.Never;

        bool any = false, all = true;
        foreach (var combination in Combinations(candidates, count))
        {
            var path = Substitute(node, combination);
            if (leafIsLastSegment ? regex.IsMatch(path) : IsMatch(regex, path))
                any = true;
            else
                all = false;
            if (any && !all)
                return MatchKind.Sometimes;
        }

        return all ? MatchKind.Always : any ? MatchKind.Sometimes : MatchKind.Never;
    }

    /// <summary>False only when <paramref name="pattern"/> can match no string containing a <c>.</c>: a conservative
    /// syntactic check that accepts letters, digits, <c>_</c>, <c>-</c>, alternation, groups, quantifiers, anchors,
    /// <c>\d</c>/<c>\w</c>/<c>\b</c>/<c>\B</c> and non-negated classes of letters, digits, <c>_</c> and <c>-</c>
    /// (a range between two such characters starts above <c>.</c>). Anything else (a <c>.</c>, another escape, a
    /// negated class, whitespace) answers true, and the resolver samples indices as before.</summary>
    internal static bool MayMatchDot(string pattern)
    {
        var inClass = false;
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            var word = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_';
            if (inClass)
            {
                if (c == ']')
                    inClass = false;
                else if (c == '-' && (pattern[i - 1] == '-' || (i + 1 < pattern.Length && pattern[i + 1] == '-')))
                    return true; // a range with '-' as an end ('[--z]') can span '.'
                else if (!word && c != '-')
                    return true;
                continue;
            }

            if (word || c == '-')
                continue;
            switch (c)
            {
                case '[':
                    if (i + 1 < pattern.Length && (pattern[i + 1] == '^' || pattern[i + 1] == ']'))
                        return true;
                    inClass = true;
                    break;
                case '\\':
                    if (i + 1 < pattern.Length && pattern[i + 1] is 'd' or 'w' or 'b' or 'B')
                        i++;
                    else
                        return true;
                    break;
                case '|' or '(' or ')' or '?' or '*' or '+' or '{' or '}' or ',' or ':' or '^' or '$' or '<' or '>' or '=' or '!':
                    break;
                default:
                    return true;
            }
        }

        return inClass;
    }

    private static bool IsMatch(Regex regex, string path)
    {
        var dot = path.LastIndexOf('.');
        return regex.IsMatch(dot < 0 ? path : path.Substring(dot + 1)) || regex.IsMatch(path);
    }

    private static IEnumerable<int[]> Combinations(IReadOnlyList<int> pool, int count)
    {
        var produced = 0;
        var indices = new int[count];
        while (produced++ < MaxCombinations)
        {
            yield return indices.Select(i => pool[i]).ToArray();
            var position = count - 1;
            while (position >= 0 && ++indices[position] == pool.Count)
                indices[position--] = 0;
            if (position < 0)
                yield break;
        }
    }

    private static string Substitute(ModuleNode node, int[] indices)
    {
        var parts = new string[node.Steps.Length];
        var ordinal = 0;
        for (var i = 0; i < parts.Length; i++)
            parts[i] = node.Steps[i].IsListIndex ? indices[ordinal++].ToString(CultureInfo.InvariantCulture) : node.Steps[i].HfName;
        return string.Join(".", parts);
    }

    private static IReadOnlyList<int> CandidateIndices(string pattern, int sampled)
    {
        var set = new SortedSet<int>(Enumerable.Range(0, sampled));
        foreach (Match m in Regex.Matches(pattern, @"\d{1,6}"))
            set.Add(int.Parse(m.Value, CultureInfo.InvariantCulture));
        return set.ToList();
    }
}
