using Lora.Quantization;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>Strict loading of a checkpoint into a <see cref="CausalLM"/>'s parameters (nanoGPT's
/// <c>from_pretrained</c>: names and shapes asserted before anything is copied).</summary>
internal static class CheckpointLoader
{
    private const int ListedKeys = 10;

    public static void Load(CausalLM model, SafeTensorsCheckpoint checkpoint, string where)
    {
        // Tied parameters appear once (named_parameters skips repeated tensors): lm_head.weight is not listed then.
        // Adapter parameters are not part of a base checkpoint (they load from a PEFT adapter directory).
        // Quantized layers first (pre-quantized weights, or quantize-on-load of layers built without storage): they
        // consume their weight keys; biases stay parameters and load below.
        var keyOf = MapKeys(model, checkpoint);
        var consumed = QuantizedCheckpoint.Materialize(model, checkpoint, keyOf, where);
        var adapterParameters = model.AdapterParameters().Select(p => p.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);
        var parameters = model.named_parameters().Where(p => !adapterParameters.Contains(p.parameter)).ToList();

        var missing = parameters.Where(p => !keyOf.ContainsKey(p.name)).Select(p => p.name).ToList();
        var used = parameters.Select(p => p.name).Concat(consumed).ToHashSet(StringComparer.Ordinal);
        var unexpected = keyOf
            .Where(kv => !used.Contains(kv.Key) && !model.IsIgnorable(kv.Key))
            .Select(kv => kv.Value)
            .Order(StringComparer.Ordinal)
            .ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0)
                parts.Add($"{missing.Count} missing key(s): {Listed(missing)}");
            if (unexpected.Count > 0)
                parts.Add($"{unexpected.Count} unexpected key(s): {Listed(unexpected)}");
            throw new LoraException(
                $"{where}: the checkpoint does not match {model.GetType().Name} (model_type '{model.Config.ModelType}' in config.json): " +
                string.Join("; ", parts) + ".");
        }

        foreach (var (name, parameter) in parameters)
        {
            var entry = checkpoint.Entry(keyOf[name]);
            if (!entry.Shape.SequenceEqual(parameter.shape))
            {
                throw new LoraException(
                    $"{where}: tensor '{entry.Name}' has shape {Shape(entry.Shape)} in the checkpoint, but the model expects " +
                    $"{Shape(parameter.shape)} (does config.json describe these weights?).");
            }
        }

        using var noGrad = no_grad();
        foreach (var (name, parameter) in parameters)
        {
            using var value = checkpoint.Load(keyOf[name], parameter.dtype, parameter.device);
            parameter.copy_(value);
        }
    }

    /// <summary>Model parameter name → checkpoint key. A checkpoint of the bare base model (no key under
    /// <c>model.</c>/<c>transformer.</c>) has its keys prefixed, as transformers does.</summary>
    private static Dictionary<string, string> MapKeys(CausalLM model, SafeTensorsCheckpoint checkpoint)
    {
        var prefix = model.BasePrefix + ".";
        var keys = checkpoint.Keys;
        var bare = !keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        return keys.ToDictionary(
            k => bare && !k.StartsWith("lm_head.", StringComparison.Ordinal) ? prefix + k : k,
            k => k,
            StringComparer.Ordinal);
    }

    private static string Listed(IReadOnlyList<string> keys) =>
        string.Join(", ", keys.Take(ListedKeys)) + (keys.Count > ListedKeys ? $" (and {keys.Count - ListedKeys} more)" : "");

    private static string Shape(IEnumerable<long> shape) => "(" + string.Join(", ", shape) + ")";
}
