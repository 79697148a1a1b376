using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Analysis.Checkpoints;

/// <summary>
/// What the build knows about one Hugging Face checkpoint (<c>&lt;LoraCheckpoint Include="models/TinyLlama" /&gt;</c>),
/// read from the AdditionalFiles Lora.targets passes: <c>config.json</c>, <c>model.safetensors.index.json</c> (tensor
/// names) and the safetensors headers extracted to obj/ (<c>*.safetensors.header.json</c>: names, dtypes, shapes).
/// The analyzer never opens a weights file.
/// </summary>
internal sealed class CheckpointInfo
{
    /// <summary>The AdditionalFiles metadata naming the checkpoint a file belongs to (its directory).</summary>
    public const string CheckpointMetadata = "build_metadata.AdditionalFiles.LoraCheckpoint";

    /// <summary>Optional: the [Lora] classes (simple or full names, ';'-separated) to check against the checkpoint.
    /// Without it, classes whose base type is named like one of the config's <c>architectures</c> are checked.</summary>
    public const string ModelsMetadata = "build_metadata.AdditionalFiles.LoraCheckpointModels";

    public const string ConfigFileName = "config.json";
    public const string IndexSuffix = ".safetensors.index.json";
    public const string HeaderSuffix = ".safetensors.header.json";

    private CheckpointInfo(string name) => Name = name;

    /// <summary>The checkpoint directory, as declared.</summary>
    public string Name { get; }

    public ImmutableArray<string> Architectures { get; private set; } = ImmutableArray<string>.Empty;

    public ImmutableArray<string> Models { get; private set; } = ImmutableArray<string>.Empty;

    /// <summary><c>num_hidden_layers</c> (<c>n_layer</c> for GPT-2), or null.</summary>
    public int? LayerCount { get; private set; }

    public string LayerCountKey { get; private set; } = "num_hidden_layers";

    public long? VocabSize { get; private set; }

    /// <summary>HF's default is true; Llama configs usually say false.</summary>
    public bool TieWordEmbeddings { get; private set; } = true;

    /// <summary>Tensor name → shape (null when only an index names it).</summary>
    public Dictionary<string, long[]?> Tensors { get; } = new(StringComparer.Ordinal);

    public bool HasConfig { get; private set; }

    /// <summary>Problems reading the files (malformed JSON...), for LORA0013.</summary>
    public List<string> Problems { get; } = new();

    public bool HasTensors => Tensors.Count > 0;

    /// <summary>Groups the AdditionalFiles that describe checkpoints (by metadata, else by directory) and reads them.</summary>
    public static ImmutableArray<CheckpointInfo> Read(AnalyzerOptions options, CancellationToken cancellationToken)
    {
        var byName = new Dictionary<string, CheckpointInfo>(StringComparer.Ordinal);
        foreach (var file in options.AdditionalFiles)
        {
            var fileName = Path.GetFileName(file.Path);
            var kind = fileName == ConfigFileName ? 0 : fileName.EndsWith(IndexSuffix, StringComparison.Ordinal) ? 1 : fileName.EndsWith(HeaderSuffix, StringComparison.Ordinal) ? 2 : -1;
            if (kind < 0)
                continue;
            var fileOptions = options.AnalyzerConfigOptionsProvider.GetOptions(file);
            fileOptions.TryGetValue(CheckpointMetadata, out var name);
            if (string.IsNullOrEmpty(name))
            {
                // Outside Lora.targets (tests, hand-written AdditionalFiles): the directory is the checkpoint, and only
                // files named like checkpoint metadata next to a config.json count.
                name = Path.GetDirectoryName(file.Path) ?? string.Empty;
            }

            if (!byName.TryGetValue(name!, out var info))
                byName[name!] = info = new CheckpointInfo(name!);
            if (fileOptions.TryGetValue(ModelsMetadata, out var models) && !string.IsNullOrWhiteSpace(models))
                info.Models = models.Split(new[] { ';', ',' }, StringSplitOptions.RemoveEmptyEntries).Select(m => m.Trim()).Where(m => m.Length > 0).ToImmutableArray();
            var text = file.GetText(cancellationToken)?.ToString();
            if (text is null)
            {
                info.Problems.Add($"{fileName} could not be read");
                continue;
            }

            try
            {
                var json = MiniJson.Parse(text) as Dictionary<string, object?> ?? throw new FormatException("not a JSON object");
                if (kind == 0)
                    info.ReadConfig(json);
                else if (kind == 1)
                    info.ReadIndex(json);
                else
                    info.ReadHeader(json);
            }
            catch (FormatException e)
            {
                info.Problems.Add($"{fileName}: {e.Message}");
            }
        }

        return byName.Values.Where(c => c.HasConfig || c.HasTensors || c.Problems.Count > 0).OrderBy(c => c.Name, StringComparer.Ordinal).ToImmutableArray();
    }

    /// <summary>Does this checkpoint describe <paramref name="type"/>'s model?</summary>
    public bool Describes(INamedTypeSymbol type)
    {
        if (!Models.IsEmpty)
            return Models.Any(m => m == type.Name || m == type.ToDisplayString());
        if (Architectures.IsEmpty && Problems.Count > 0)
            return true;   // unreadable config: every model hears about it (LORA0013) rather than nobody
        for (var t = type.BaseType; t is not null; t = t.BaseType)
        {
            if (Architectures.Any(a => string.Equals(a, t.Name, StringComparison.OrdinalIgnoreCase)))
                return true;
        }

        return false;
    }

    private void ReadConfig(Dictionary<string, object?> json)
    {
        HasConfig = true;
        if (json.TryGetValue("architectures", out var a) && a is List<object?> list)
            Architectures = list.OfType<string>().ToImmutableArray();
        foreach (var key in new[] { "num_hidden_layers", "n_layer", "num_layers" })
        {
            if (json.TryGetValue(key, out var n) && n is double d)
            {
                LayerCount = (int)d;
                LayerCountKey = key;
                break;
            }
        }

        if (json.TryGetValue("vocab_size", out var v) && v is double vocab)
            VocabSize = (long)vocab;
        if (json.TryGetValue("tie_word_embeddings", out var tie) && tie is bool tied)
            TieWordEmbeddings = tied;
    }

    private void ReadIndex(Dictionary<string, object?> json)
    {
        if (json.TryGetValue("weight_map", out var map) && map is Dictionary<string, object?> weights)
        {
            foreach (var name in weights.Keys)
            {
                if (!Tensors.ContainsKey(name))
                    Tensors[name] = null;
            }
        }
        else
        {
            Problems.Add("the safetensors index has no weight_map");
        }
    }

    private void ReadHeader(Dictionary<string, object?> json)
    {
        foreach (var pair in json)
        {
            if (pair.Key == "__metadata__" || pair.Value is not Dictionary<string, object?> entry)
                continue;
            Tensors[pair.Key] = entry.TryGetValue("shape", out var s) && s is List<object?> shape
                ? shape.Select(d => d is double x ? (long)x : -1L).ToArray()
                : null;
        }
    }

    public static string Shape(long[] shape) => "(" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")";
}
