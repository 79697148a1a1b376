using System;
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

    /// <summary>Modules selected that cannot host LoRA (norms, dropout, containers).</summary>
    public ImmutableArray<ModuleNode> NotAdaptable { get; init; } = ImmutableArray<ModuleNode>.Empty;

    /// <summary>Adaptable modules the regex selects but <c>LayersToTransform</c> leaves out because they are in no
    /// numbered layer.</summary>
    public ImmutableArray<ModuleNode> OutsideLayers { get; init; } = ImmutableArray<ModuleNode>.Empty;

    /// <summary>Leaf names of every adaptable layer of the model, in tree order (for messages).</summary>
    public ImmutableArray<string> AvailableLeaves { get; init; } = ImmutableArray<string>.Empty;

    /// <summary>Non-empty when the targets are exactly "every adaptable layer with these leaf names" (PEFT's list form).</summary>
    public ImmutableArray<string> LeafNames { get; init; } = ImmutableArray<string>.Empty;
}

/// <summary>
/// Resolves a <c>[Lora]</c> plan against a module tree: a pure function of strings (no symbols), shared by the
/// generator's parser and the analyzers so that they always agree.
/// <para>
/// Semantics: <c>Targets</c> is a .NET regex that must fully match (<c>^(?:…)$</c>) a module's leaf name or its full
/// dotted path. List indices are symbolic at compile time; the regex is tried with every index in 0..63 plus every
/// number written in the pattern (for nested lists 0..7 plus those numbers). A module matched for all of them is a
/// static target; for some of them, a run-time-checked target; for none, not a target. Modules named by
/// <c>ModulesToSave</c> are never targets (PEFT). With <c>LayersToTransform</c>, only modules inside a numbered layer
/// (the first list index after the second path segment, as PEFT reads it) are kept.
/// </para>
/// </summary>
internal static class LoraTargetResolver
{
    public const int SampledIndices = 64;
    private const int SampledNestedIndices = 8;
    private const int MaxCombinations = 4096;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);

    /// <summary>The regex as the generated code builds it: anchored, culture-invariant.</summary>
    public static string Anchored(string pattern) => "^(?:" + pattern + ")$";

    public static Regex? TryCreateRegex(string pattern, out string? error)
    {
        try
        {
            error = null;
            return new Regex(Anchored(pattern), RegexOptions.CultureInvariant, Timeout);
        }
        catch (ArgumentException e)
        {
            error = e.Message;
            return null;
        }
    }

    public static TargetResolution Resolve(ImmutableArray<ModuleNode> nodes, string pattern, IReadOnlyList<string> modulesToSave, IReadOnlyList<int>? layersToTransform)
    {
        var available = nodes.Where(n => n.IsAdaptable).Select(n => n.Leaf ?? "{i}").Distinct(StringComparer.Ordinal).ToImmutableArray();
        var regex = TryCreateRegex(pattern, out var error);
        if (regex is null)
            return new TargetResolution { RegexError = error, AvailableLeaves = available };

        var candidates = CandidateIndices(pattern, SampledIndices);
        var nestedCandidates = CandidateIndices(pattern, SampledNestedIndices);
        var targets = new List<TargetMatch>();
        var notAdaptable = new List<ModuleNode>();
        var outsideLayers = new List<ModuleNode>();
        try
        {
            foreach (var node in nodes)
            {
                var match = Evaluate(regex, node, node.PlaceholderCount > 1 ? nestedCandidates : candidates);
                if (match == MatchKind.Never || IsModuleToSave(node, modulesToSave))
                    continue;
                var layerOrdinal = LayerOrdinal(node);
                if (layersToTransform is not null && layerOrdinal < 0)
                {
                    if (node.IsHost)
                        outsideLayers.Add(node);
                    continue;
                }

                if (node.IsHost)
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
            LeafNames = LeafNamesOf(nodes, targets, modulesToSave, layersToTransform),
        };
    }

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

    private static MatchKind Evaluate(Regex regex, ModuleNode node, IReadOnlyList<int> candidates)
    {
        var count = node.PlaceholderCount;
        if (count == 0)
        {
            var path = Substitute(node, Array.Empty<int>());
            return IsMatch(regex, path) ? MatchKind.Always : MatchKind.Never;
        }

        // The leaf name does not depend on the indices: when it matches, every index matches (the common case,
        // "q_proj|v_proj"), without trying the combinations.
        if (node.Leaf is { } leaf && regex.IsMatch(leaf))
            return MatchKind.Always;

        bool any = false, all = true;
        foreach (var combination in Combinations(candidates, count))
        {
            if (IsMatch(regex, Substitute(node, combination)))
                any = true;
            else
                all = false;
            if (any && !all)
                return MatchKind.Sometimes;
        }

        return all ? MatchKind.Always : any ? MatchKind.Sometimes : MatchKind.Never;
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

    private static ImmutableArray<string> LeafNamesOf(ImmutableArray<ModuleNode> nodes, List<TargetMatch> targets, IReadOnlyList<string> modulesToSave, IReadOnlyList<int>? layersToTransform)
    {
        if (targets.Count == 0 || targets.Any(t => t.RuntimeCheck || t.Node.Leaf is null))
            return ImmutableArray<string>.Empty;
        var leaves = new HashSet<string>(targets.Select(t => t.Node.Leaf!), StringComparer.Ordinal);
        var selected = new HashSet<ModuleNode>(targets.Select(t => t.Node));
        foreach (var node in nodes)
        {
            if (!node.IsHost || node.Leaf is null || !leaves.Contains(node.Leaf) || IsModuleToSave(node, modulesToSave))
                continue;
            if (layersToTransform is not null && LayerOrdinal(node) < 0)
                continue;
            if (!selected.Contains(node))
                return ImmutableArray<string>.Empty;
        }

        // First-seen order in the tree (q_proj, v_proj), as a user would write the list.
        return nodes.Where(n => selected.Contains(n)).Select(n => n.Leaf!).Distinct(StringComparer.Ordinal).ToImmutableArray();
    }
}
