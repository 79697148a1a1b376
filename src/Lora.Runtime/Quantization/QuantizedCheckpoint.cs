using Lora.Backend;
using Lora.Models;
using Lora.Modules;
using Lora.Modules.Bases;
using Lora.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Quantization;

/// <summary>
/// The quantized part of loading a checkpoint (called by the strict loader before it fills the parameters): every
/// linear layer gets its real base, one at a time —
/// <list type="bullet">
/// <item>a bitsandbytes 4-bit weight (<c>weight.quant_state.bitsandbytes__nf4|fp4</c> present) or int8 weight
/// (<c>SCB</c> present) is read as stored, without re-quantizing (a pre-quantized checkpoint);</item>
/// <item>a dense weight of a layer built without storage (<see cref="DeferredStorage"/>) is read in the model dtype
/// and quantized on the model's device when the model's <see cref="CausalLM.Quantization"/> selects the layer, or
/// kept dense otherwise (the output head, skipped modules).</item>
/// </list>
/// Biases stay parameters, filled by the strict loader. Returns the checkpoint keys (model-side) consumed here.
/// </summary>
internal static class QuantizedCheckpoint
{
    public static HashSet<string> Materialize(CausalLM model, SafeTensorsCheckpoint checkpoint, IReadOnlyDictionary<string, string> keyOf, string where)
    {
        var consumed = new HashSet<string>(StringComparer.Ordinal);
        var layers = model.named_modules().Where(m => m.module is LinearLayer).Select(m => (Path: m.name, Layer: (LinearLayer)m.module)).ToList();
        var anyQuantized = layers.Any(l => keyOf.ContainsKey(l.Path + ".SCB") || FourBitStateKey(keyOf, l.Path) is not null);
        if (!anyQuantized && !layers.Any(l => DeferredStorage.IsDeferred(l.Layer.Base)))
            return consumed;

        var device = model.parameters().FirstOrDefault(p => p.device.type != DeviceType.META)?.device ?? CPU;
        using var noGrad = no_grad();
        foreach (var (path, layer) in layers)
        {
            var old = layer.Base;
            var deferred = DeferredStorage.IsDeferred(old);
            var at = $"{where}: {path}";
            Tensor? Get(string suffix) => keyOf.TryGetValue($"{path}.{suffix}", out var key) ? checkpoint.Load(key) : null;
            Parameter? Bias() => old.Bias is null ? null : deferred ? new Parameter(empty([old.OutFeatures], old.DType, device)) : old.Bias;

            LinearBase? replacement = null;
            if (FourBitStateKey(keyOf, path) is not null)
            {
                var weight = LoadFourBit(path, Get, at, device, old, consumed);
                replacement = new FourBitLinear(weight, Bias(), model.Quantization?.ComputeDType ?? ScalarType.Float32);
                model.Quantization = model.Quantization is { } known
                    ? known with { Blocksize = weight.Blocksize }
                    : new QuantizationConfig { Type = weight.Type, DoubleQuant = weight.DoubleQuant, Blocksize = weight.Blocksize };
            }
            else if (keyOf.ContainsKey($"{path}.SCB"))
            {
                using var codes = Get(DenseLinear.WeightName) ?? throw new LoraException($"{at}: has SCB but no int8 'weight'.");
                using var scales = Get(Int8Weight.ScaleName)!;
                CheckShape(at, codes.shape, [old.OutFeatures, old.InFeatures], "int8 weight");
                if (Get(Int8Weight.FormatName) is { } format)
                {
                    using (format)
                    {
                        if (format.numel() != 1 || format.to(ScalarType.Int64).item<long>() != 0)
                            throw new LoraException($"{at}.weight_format: only the row-major int8 layout (0) is supported.");
                    }
                }

                using var onDevice = codes.to(device);
                using var scalesOnDevice = scales.to(device);
                replacement = new Int8Linear(Int8Weight.FromState(onDevice, scalesOnDevice, old.DType, at), Bias(), model.Quantization?.Int8Threshold ?? 6.0);
                model.Quantization ??= QuantizationConfig.Int8;
                consumed.UnionWith([$"{path}.weight", $"{path}.SCB", $"{path}.weight_format"]);
            }
            else if (deferred)
            {
                if (model.Quantization is { } config && ModelQuantizer.Quantizes(model, path, layer, config) && keyOf.TryGetValue($"{path}.weight", out var key))
                {
                    var entry = checkpoint.Entry(key);
                    CheckShape(at, entry.Shape, old.FanInFanOut ? [old.InFeatures, old.OutFeatures] : [old.OutFeatures, old.InFeatures], "weight");
                    using var stored = checkpoint.Load(key, old.DType, device);
                    using var outIn = old.FanInFanOut ? stored.t() : stored.alias();
                    replacement = ModelQuantizer.QuantizedBase(outIn, Bias(), config);
                    consumed.Add($"{path}.weight");
                }
                else
                {
                    // Kept dense (output head, skipped module), or missing from the checkpoint: the strict loader fills or reports it.
                    replacement = old.FanInFanOut
                        ? new Conv1DLinear(old.InFeatures, old.OutFeatures, old.Bias is not null, old.DType, device)
                        : new DenseLinear(old.InFeatures, old.OutFeatures, old.Bias is not null, old.DType, device);
                }
            }

            if (replacement is null)
                continue;
            layer.ReplaceBase(replacement);
            if (!deferred && old is DenseLinear dense)
                dense.WeightParameter.Dispose();
        }

        if (model.Quantization is not null)
            NativeHeap.Trim();
        return consumed;
    }

    private static string? FourBitStateKey(IReadOnlyDictionary<string, string> keyOf, string path) =>
        new[] { "nf4", "fp4" }.Select(t => $"{path}.weight.{FourBitWeight.QuantStatePrefix}{t}").FirstOrDefault(keyOf.ContainsKey);

    private static FourBitWeight LoadFourBit(string path, Func<string, Tensor?> get, string at, Device device, LinearBase old, HashSet<string> consumed)
    {
        // FromState's dispose scope owns what get() loads; what it keeps is detached from it.
        var weight = FourBitWeight.FromState(suffix =>
        {
            var t = get(suffix);
            if (t is not null)
                consumed.Add($"{path}.{suffix}");
            return t;
        }, at, device);
        CheckShape(at, weight.Shape, [old.OutFeatures, old.InFeatures], "4-bit weight (quant_state shape)");
        return weight;
    }

    private static void CheckShape(string at, long[] actual, long[] expected, string what)
    {
        if (!actual.SequenceEqual(expected))
            throw new LoraException($"{at}: the {what} has shape ({string.Join(", ", actual)}), but the model expects ({string.Join(", ", expected)}) (does config.json describe these weights?).");
    }
}
