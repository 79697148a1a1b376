using System.Text.Json;
using System.Text.Json.Nodes;
using Lora.Modules;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Writes a model as a Hugging Face checkpoint directory that transformers' <c>from_pretrained</c> loads:
/// <c>config.json</c> (and <c>generation_config.json</c>, tokenizer files) carried over from the source directory,
/// weights as <c>model.safetensors</c> or size-limited shards with <c>model.safetensors.index.json</c>. A tied
/// <c>lm_head.weight</c> is written once, under the embedding's key, as <c>save_pretrained</c> does. The directory is
/// assembled under a temporary name and renamed into place, so an interrupted export leaves nothing half-written.
/// </summary>
public static class PretrainedWriter
{
    /// <summary>Files copied from the source model directory when present.</summary>
    public static readonly IReadOnlyList<string> CarriedFiles =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
        "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt",
    ];

    /// <summary>Writes <paramref name="model"/> (adapters must be merged and unloaded first) to
    /// <paramref name="outputDirectory"/>, which must not exist or be empty.</summary>
    public static IReadOnlyList<string> Save(CausalLM model, string sourceDirectory, string outputDirectory, long maxShardBytes = 5L << 30)
    {
        if (model.AdaptedLayers().Any())
            throw new LoraException("the model still has adapters: merge and unload them first (MergeAndUnload) to export a plain checkpoint.");
        var full = Path.GetFullPath(outputDirectory);
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new LoraException($"{outputDirectory}: the output directory exists and is not empty; choose another or remove it.");
        if (!File.Exists(Path.Combine(sourceDirectory, "config.json")))
            throw new LoraException($"{sourceDirectory}: no config.json to carry into the exported checkpoint.");

        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            WriteInto(model, sourceDirectory, staging, maxShardBytes);
            if (Directory.Exists(full))
                Directory.Delete(full);
            Directory.Move(staging, full);
        }
        catch
        {
            if (Directory.Exists(staging))
                Directory.Delete(staging, recursive: true);
            throw;
        }

        return Directory.GetFiles(full).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!;
    }

    /// <summary>
    /// Writes the checkpoint files into an existing <paramref name="directory"/> (a staging or checkpoint directory the
    /// caller makes atomic): the <see cref="CarriedFiles"/> present in <paramref name="sourceDirectory"/> and the
    /// weights. Tied parameters appear once in <c>named_parameters()</c>, so a tied <c>lm_head.weight</c> is not written.
    /// </summary>
    public static void WriteInto(CausalLM model, string? sourceDirectory, string directory, long maxShardBytes = 5L << 30)
    {
        if (sourceDirectory is not null)
        {
            foreach (var name in CarriedFiles)
            {
                var source = Path.Combine(sourceDirectory, name);
                if (File.Exists(source))
                    File.Copy(source, Path.Combine(directory, name), overwrite: true);
            }
        }

        WriteQuantizationConfig(model, Path.Combine(directory, ModelConfigLoader.FileName));
        using var scope = NewDisposeScope();
        using (no_grad())
            SafeTensorsWriter.WriteCheckpoint(directory, StateDict(model), maxShardBytes);
    }

    /// <summary>
    /// The tensors a checkpoint of <paramref name="model"/> holds, by key: its parameters, its buffers (a quantized
    /// base's codes, scales and tables) and what quantized bases add when saving (bitsandbytes'
    /// <c>weight.quant_state.bitsandbytes__nf4</c> JSON, <c>weight_format</c>) — PyTorch's <c>state_dict()</c> with
    /// bitsandbytes' <c>_save_to_state_dict</c>. Made tensors belong to the caller's dispose scope.
    /// </summary>
    public static List<KeyValuePair<string, Tensor>> StateDict(CausalLM model)
    {
        var tensors = model.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)).ToList();
        tensors.AddRange(model.named_buffers().Select(b => KeyValuePair.Create(b.name, b.buffer)));
        foreach (var (path, module) in model.named_modules())
        {
            if (module is LinearLayer layer)
                tensors.AddRange(layer.Base.ExtraState.Select(e => KeyValuePair.Create($"{path}.{e.Name}", e.Value)));
        }

        return tensors;
    }

    /// <summary>Sets (or, for a dense model, removes) <c>quantization_config</c> in the written config.json, as
    /// transformers' <c>save_pretrained</c> of a bitsandbytes model does; other fields are kept as they are.</summary>
    private static void WriteQuantizationConfig(CausalLM model, string configPath)
    {
        if (!File.Exists(configPath))
            return;
        var root = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
            ?? throw new LoraException($"{configPath}: expected a JSON object.");
        if (model.Quantization is null && !root.ContainsKey(QuantizationConfigKey))
            return;
        root.Remove(QuantizationConfigKey);
        if (model.Quantization is { } quantization)
            root[QuantizationConfigKey] = quantization.ToJson();
        AtomicFile.WriteAllText(configPath, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
    }

    private const string QuantizationConfigKey = "quantization_config";
}
