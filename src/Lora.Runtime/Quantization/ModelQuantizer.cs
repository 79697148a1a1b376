using Lora.Backend;
using Lora.Models;
using Lora.Modules;
using Lora.Modules.Bases;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Quantization;

/// <summary>
/// Puts a model's linear layers on quantized bases and back. Loading does this one weight at a time from the
/// checkpoint (<see cref="CausalLM.FromPretrained(string, ScalarType, Device?, QuantizationConfig?)"/>); these are
/// the in-memory forms: <see cref="Quantize"/> (e.g. after random initialisation) and <see cref="Dequantize"/>
/// (transformers' <c>model.dequantize()</c>, before a dense export). The output head is never quantized.
/// </summary>
public static class ModelQuantizer
{
    /// <summary>Quantizes every linear layer <paramref name="config"/> selects (<see cref="QuantizationConfig.Quantizes"/>)
    /// from its current weight; adapters already attached stay. Returns the quantized paths.</summary>
    public static IReadOnlyList<string> Quantize(CausalLM model, QuantizationConfig config)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (model.Quantization is { } current)
            throw new LoraException($"the model is already quantized ({current}); dequantize it first (ModelQuantizer.Dequantize).");
        var quantized = new List<string>();
        using var noGrad = no_grad();
        foreach (var (path, layer) in QuantizableLayers(model, config))
        {
            var old = layer.Base;
            using (var weight = old.Weight())
                layer.ReplaceBase(QuantizedBase(weight, old.Bias, config));
            (old as DenseLinear)?.WeightParameter.Dispose();
            quantized.Add(path);
        }

        model.Quantization = config;
        NativeHeap.Trim();
        return quantized;
    }

    /// <summary>Replaces every quantized base by a dense one holding its dequantized weight, in the weight's original
    /// dtype (GPT-2's <c>Conv1D</c> layers get their <c>(in, out)</c> storage back); merged adapters then fold in
    /// exactly. Returns the dequantized paths.</summary>
    public static IReadOnlyList<string> Dequantize(CausalLM model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var paths = new List<string>();
        using var noGrad = no_grad();
        foreach (var (path, module) in model.named_modules())
        {
            if (module is not LinearLayer { Base: QuantizedLinear quantized } layer)
                continue;
            var weight = quantized.Weight();
            LinearBase dense = layer is Conv1D
                ? new Conv1DLinear(new Parameter(weight.t().contiguous(), requires_grad: false), quantized.Bias)
                : new DenseLinear(new Parameter(weight, requires_grad: false), quantized.Bias);
            if (layer is Conv1D)
                weight.Dispose();
            layer.ReplaceBase(dense);
            DisposeState(quantized);
            paths.Add(path);
        }

        model.Quantization = null;
        NativeHeap.Trim();
        return paths;
    }

    /// <summary>The quantized layers of <paramref name="model"/>, by path.</summary>
    public static IEnumerable<(string Path, QuantizedLinear Base)> QuantizedLayers(nn.Module model) =>
        model.named_modules().Where(m => m.module is LinearLayer { Base: QuantizedLinear })
            .Select(m => (m.name, (QuantizedLinear)((LinearLayer)m.module).Base));

    /// <summary>The quantized base for <paramref name="outIn"/> <c>(out, in)</c> under <paramref name="config"/>.</summary>
    internal static QuantizedLinear QuantizedBase(Tensor outIn, Parameter? bias, QuantizationConfig config) =>
        config.Type == QuantizationType.Int8
            ? new Int8Linear(Int8Weight.Quantize(outIn), bias, config.Int8Threshold)
            : new FourBitLinear(FourBitWeight.Quantize(outIn, config.Type, config.Blocksize, config.DoubleQuant), bias, config.ComputeDType);

    /// <summary>True when the layer at <paramref name="path"/> of <paramref name="model"/> is quantized under
    /// <paramref name="config"/>: selected by it, and not the output head.</summary>
    internal static bool Quantizes(CausalLM model, string path, LinearLayer layer, QuantizationConfig config) =>
        config.Quantizes(path) && !ReferenceEquals(layer, model.OutputHead) && path != QuantizationConfig.OutputHeadName;

    private static List<(string Path, LinearLayer Layer)> QuantizableLayers(CausalLM model, QuantizationConfig config) =>
        model.named_modules()
            .Where(m => m.module is LinearLayer { Base: not QuantizedLinear } l && Quantizes(model, m.name, l, config))
            .Select(m => (m.name, (LinearLayer)m.module))
            .ToList();

    private static void DisposeState(QuantizedLinear quantized)
    {
        switch (quantized)
        {
            case FourBitLinear f:
                f.QuantizedWeight.Dispose();
                break;
            case Int8Linear i:
                i.QuantizedWeight.Dispose();
                break;
        }
    }
}
