using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;
using Lora.Generators.Diagnostics;

namespace Lora.Generators.Analysis.Checkpoints;

/// <summary>
/// Checks a valid plan against a real checkpoint: every resolved target path, with list indices expanded (the layer
/// index from <c>num_hidden_layers</c>/<c>n_layer</c>, other indices from the tensor names), has a 2-D
/// <c>{path}.weight</c> in the checkpoint (an embedding's rows equal <c>vocab_size</c>); LayersToTransform stays below
/// the layer count. Reports LORA0010, LORA0011 (missing weights) and LORA0012 (incompatible shapes).
/// </summary>
internal static class CheckpointValidator
{
    private const int Listed = 5;

    /// <summary><c>PeftTargeting.OutputHeadPath</c>: tied to the embedding table when <c>tie_word_embeddings</c>.</summary>
    private const string OutputHead = "lm_head";

    public static IEnumerable<LoraDiagnostic> Validate(string model, ValidatedPlan plan, CheckpointInfo checkpoint)
    {
        var a = plan.Arguments;
        var layersToTransform = plan.LayersToTransform;
        var resolution = plan.Resolution;
        if (resolution is null || resolution.Targets.IsEmpty)
            yield break;

        var layers = checkpoint.LayerCount;
        if (layers is { } count && layersToTransform is { } selected && selected.Where(i => i >= count).ToList() is { Count: > 0 } beyond)
        {
            yield return new LoraDiagnostic(DiagnosticDescriptors.InvalidLayersToTransform, a.LocationOf("LayersToTransform"),
                new object[] { model, $"contains {string.Join(", ", beyond)}, but checkpoint '{checkpoint.Name}' has {count} layers ({checkpoint.LayerCountKey} in config.json): indices go from 0 to {count - 1}" });
        }

        if (!checkpoint.HasTensors)
            yield break;

        var regex = TargetResolver.TryCreateRegex(a.Targets!, out _);
        var missing = new List<string>();
        var badShapes = new List<string>();
        foreach (var target in resolution.Targets)
        {
            foreach (var path in ExpectedPaths(target, checkpoint, layersToTransform))
            {
                if (target.RuntimeCheck && regex is not null && !IsMatch(regex, path))
                    continue;
                var key = FindWeight(checkpoint, path);
                if (key is null)
                {
                    if (path == OutputHead && checkpoint.TieWordEmbeddings)
                        continue;   // tied to the embedding table: the checkpoint stores it once, under the embedding's name
                    missing.Add(path + ".weight");
                    continue;
                }

                if (checkpoint.Tensors[key] is not { } shape)
                    continue;   // named by an index only: existence is all we can check
                if (shape.Length != 2)
                    badShapes.Add($"'{key}' has shape {CheckpointInfo.Shape(shape)}, not the 2-D weight of a {What(target)}");
                else if (IsEmbedding(target) && checkpoint.VocabSize is { } vocab && shape[0] != vocab)
                    badShapes.Add($"'{key}' has shape {CheckpointInfo.Shape(shape)}, but an embedding table of vocab_size {vocab.ToString(CultureInfo.InvariantCulture)} has {vocab.ToString(CultureInfo.InvariantCulture)} rows");
            }
        }

        var location = a.LocationOf("Targets");
        if (missing.Count > 0)
            yield return new LoraDiagnostic(DiagnosticDescriptors.CheckpointMissingTargets, location,
                new object[] { model, checkpoint.Name, missing.Count, List(missing) });
        if (badShapes.Count > 0)
            yield return new LoraDiagnostic(DiagnosticDescriptors.CheckpointIncompatibleShape, location,
                new object[] { model, checkpoint.Name, List(badShapes) });
    }

    private static bool IsEmbedding(TargetMatch target) => target.Node.HostKind == "Lora.Peft.EmbeddingAdapter";

    private static string What(TargetMatch target) =>
        IsEmbedding(target) ? "embedding table" : target.Node.TypeName == "Conv1D" ? "Conv1D layer" : "linear layer";

    /// <summary>The concrete paths a target stands for in this checkpoint.</summary>
    private static IEnumerable<string> ExpectedPaths(TargetMatch target, CheckpointInfo checkpoint, IReadOnlyList<int>? layersToTransform)
    {
        var node = target.Node;
        var placeholders = node.PlaceholderCount;
        if (placeholders == 0)
            return new[] { Substitute(node, Array.Empty<int>()) };

        // Index tuples present in the checkpoint for this template.
        var found = new List<int[]>();
        // The first segment is optional, as in FindWeight (a base-model prefix the checkpoint may not have).
        var parts = node.Steps.Select(s => s.IsListIndex ? "(\\d+)" : Regex.Escape(s.HfName)).ToList();
        var pattern = new Regex("^" + (node.Steps[0].IsListIndex ? parts[0] + "\\." : "(?:" + parts[0] + "\\.)?") + string.Join("\\.", parts.Skip(1)) + "\\.weight$", RegexOptions.CultureInvariant);
        foreach (var key in checkpoint.Tensors.Keys)
        {
            var m = pattern.Match(key);
            if (m.Success)
                found.Add(Enumerable.Range(1, placeholders).Select(g => int.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture)).ToArray());
        }

        var values = new List<IEnumerable<int>>();
        for (var p = 0; p < placeholders; p++)
        {
            if (p == target.LayerOrdinal && checkpoint.LayerCount is { } count)
                values.Add(Enumerable.Range(0, count).Where(i => layersToTransform is null || layersToTransform.Contains(i)));
            else if (p == target.LayerOrdinal && layersToTransform is not null)
                values.Add(layersToTransform);
            else
                values.Add(found.Select(f => f[p]).Distinct().OrderBy(i => i).ToList());
        }

        // An index known only from the names (a nested list) that no name has: the template itself is missing.
        if (values.Any(v => !v.Any()))
            return new[] { node.DisplayPath };
        return Cartesian(values).Select(indices => Substitute(node, indices));
    }

    private static IEnumerable<int[]> Cartesian(List<IEnumerable<int>> values)
    {
        IEnumerable<int[]> result = new[] { Array.Empty<int>() };
        foreach (var v in values)
        {
            var list = v.ToList();
            result = result.SelectMany(prefix => list.Select(i => prefix.Concat(new[] { i }).ToArray()));
        }

        return result;
    }

    /// <summary>The checkpoint key of <c>{path}.weight</c>: exactly, or without the base-model prefix (GPT-2 checkpoints
    /// say <c>h.0.attn.c_attn.weight</c> for <c>transformer.h.0.attn.c_attn</c>).</summary>
    private static string? FindWeight(CheckpointInfo checkpoint, string path)
    {
        var key = path + ".weight";
        if (checkpoint.Tensors.ContainsKey(key))
            return key;
        var dot = path.IndexOf('.');
        if (dot > 0 && checkpoint.Tensors.ContainsKey(key.Substring(dot + 1)))
            return key.Substring(dot + 1);
        return null;
    }

    private static bool IsMatch(Regex regex, string path)
    {
        var dot = path.LastIndexOf('.');
        return regex.IsMatch(dot < 0 ? path : path.Substring(dot + 1)) || regex.IsMatch(path);
    }

    private static string Substitute(ModuleNode node, int[] indices)
    {
        var parts = new string[node.Steps.Length];
        var ordinal = 0;
        for (var i = 0; i < parts.Length; i++)
            parts[i] = node.Steps[i].IsListIndex ? indices[ordinal++].ToString(CultureInfo.InvariantCulture) : node.Steps[i].HfName;
        return string.Join(".", parts);
    }

    private static string List(IReadOnlyList<string> items) =>
        string.Join(", ", items.Take(Listed)) + (items.Count > Listed ? $" and {items.Count - Listed} more" : string.Empty);
}
