using System.Globalization;
using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora;

/// <summary>
/// Model-wide adapter operations (PEFT's <c>PeftModel</c> methods) over every layer that hosts adapters, of any
/// method: merge, unmerge, merge-and-unload, disable, set the active adapters, mark what trains, count parameters.
/// </summary>
public static class PeftModelExtensions
{
    /// <summary>The layers that host at least one adapter, with their paths.</summary>
    public static IEnumerable<(string Path, IAdapterHost Layer)> AdaptedLayers(this nn.Module model) =>
        model.named_modules().Where(m => m.module is IAdapterHost host && host.AdapterNames.Any()).Select(m => (m.name, (IAdapterHost)m.module));

    /// <summary>Every adapter parameter of the model (of adapter <paramref name="adapterName"/>, or of all), found from
    /// the module tree: each host's adapters and their own parameters (whose names are PEFT's key suffixes).</summary>
    public static IEnumerable<AdapterParameter> AdapterParameters(this nn.Module model, string? adapterName = null)
    {
        foreach (var (path, host) in model.AdaptedLayers())
        {
            foreach (var name in host.AdapterNames)
            {
                if (adapterName is not null && name != adapterName)
                    continue;
                foreach (var (parameterName, parameter) in host.GetAdapter(name).named_parameters())
                    yield return new AdapterParameter(path, name, parameterName, parameter);
            }
        }
    }

    /// <summary>Folds the active adapters into the base weights (<paramref name="safe"/>: refuse NaN/Inf; on refusal
    /// the layers merged so far are unmerged again, so the model is unchanged). Merging into a quantized base
    /// re-quantizes it, which rounds: <paramref name="warnings"/> is told (PEFT warns the same in <c>lora/bnb.py</c>).</summary>
    public static void MergeAdapters(this nn.Module model, bool safe = true, Action<string>? warnings = null)
    {
        var quantized = model.AdaptedLayers().Count(l => l.Layer is Modules.LinearLayer { Base.IsQuantized: true });
        if (quantized > 0)
            warnings?.Invoke($"merging into {quantized} quantized layer(s) re-quantizes their weights: rounding changes the outputs. For an exact merge, dequantize first (ModelQuantizer.Dequantize) and export a dense model.");
        var done = new List<IAdapterHost>();
        foreach (var (path, layer) in model.AdaptedLayers())
        {
            try
            {
                layer.Merge(safe);
                done.Add(layer);
            }
            catch (LoraException e)
            {
                done.ForEach(l => l.Unmerge());
                throw new LoraException($"{path}: {e.Message}", e);
            }
        }
    }

    /// <summary>Undoes <see cref="MergeAdapters"/>.</summary>
    public static void UnmergeAdapters(this nn.Module model)
    {
        foreach (var (_, layer) in model.AdaptedLayers())
            layer.Unmerge();
    }

    /// <summary>Merges the active adapters and removes every adapter: a plain model with the adapted weights
    /// (PEFT's <c>merge_and_unload</c>).</summary>
    public static void MergeAndUnload(this nn.Module model, bool safe = true, Action<string>? warnings = null)
    {
        model.MergeAdapters(safe, warnings);
        BaseOverrides.Forget(model);
        foreach (var (_, layer) in model.AdaptedLayers().ToList())
        {
            foreach (var name in layer.AdapterNames.ToList())
                layer.Remove(name);
        }
    }

    /// <summary>Turns every adapter off until the returned scope is disposed (PEFT's <c>disable_adapter()</c>
    /// context manager).</summary>
    public static IDisposable DisableAdapters(this nn.Module model)
    {
        var layers = model.AdaptedLayers().Select(l => l.Layer).ToList();
        layers.ForEach(l => l.SetAdaptersDisabled(true));
        BaseOverrides.Swap(model);
        return new Scope(() =>
        {
            BaseOverrides.Swap(model);
            layers.ForEach(l => l.SetAdaptersDisabled(false));
        });
    }

    /// <summary>Makes <paramref name="names"/> the active adapters, as PEFT's <c>set_adapter</c>: every layer's active
    /// set becomes the ones of <paramref name="names"/> it has — none on a layer that has none of them, so an adapter
    /// left out stops applying everywhere (<c>BaseTunerLayer.set_adapter</c> sets the names on every tuner layer, and a
    /// layer's forward skips the active names it does not hold).</summary>
    /// <exception cref="LoraException">No layer has all of <paramref name="names"/>.</exception>
    public static void SetActiveAdapters(this nn.Module model, params string[] names)
    {
        var layers = model.AdaptedLayers().Select(l => l.Layer).ToList();
        if (!layers.Any(l => names.All(l.HasAdapter)))
            throw new LoraException($"no layer has the adapter(s) {string.Join(", ", names)}.");
        foreach (var layer in layers)
        {
            var own = names.Where(layer.HasAdapter).ToList();
            if (!own.SequenceEqual(layer.ActiveAdapters))
                layer.SetActiveAdapters(own);
        }
    }

    /// <summary>Freezes the base model and makes every adapter's parameters trainable. Returns them, named.</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> MarkOnlyAdaptersTrainable(this nn.Module model)
    {
        var adapters = model.AdapterParameters().Select(p => p.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);
        return model.MarkTrainableWhere(adapters.Contains);
    }

    /// <summary>Freezes the base model and makes adapter <paramref name="adapterName"/>'s parameters trainable, with
    /// what its <paramref name="config"/> trains besides (modules_to_save; LoRA's biases: the method's
    /// <see cref="PeftMethod.ExtraTrainables"/>). Returns the trainable parameters, named, in model order.</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> MarkTrainable(this nn.Module model, PeftConfig config, string adapterName = PeftAdapter.DefaultName)
    {
        var selected = model.AdapterParameters(adapterName).Select(p => p.Parameter)
            .Concat(PeftMethods.For(config).ExtraTrainables(model, config, adapterName).Select(e => e.Parameter))
            .ToHashSet(ReferenceEqualityComparer.Instance);
        return model.MarkTrainableWhere(selected.Contains);
    }

    /// <summary>Sets <c>requires_grad</c> on every parameter to <paramref name="train"/>'s answer; returns the trainable ones.</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> MarkTrainableWhere(this nn.Module model, Func<Parameter, bool> train)
    {
        var trainable = new List<(string, Parameter)>();
        foreach (var (name, parameter) in model.named_parameters())
        {
            parameter.requires_grad = train(parameter);
            if (parameter.requires_grad)
                trainable.Add((name, parameter));
        }

        return trainable;
    }

    /// <summary>(trainable, all) parameter counts; tied parameters count once.</summary>
    public static (long Trainable, long All) ParameterCounts(this nn.Module model)
    {
        long trainable = 0, all = 0;
        foreach (var (_, p) in model.named_parameters())
        {
            all += p.numel();
            if (p.requires_grad)
                trainable += p.numel();
        }

        // A quantized weight is buffers, not a parameter, but still the model's parameters: PEFT counts a Params4bit
        // as twice its packed bytes (get_nb_trainable_parameters), i.e. its element count, as here.
        all += Quantization.ModelQuantizer.QuantizedLayers(model)
            .Sum(l => l.Base is Modules.Bases.FourBitLinear f ? 2 * f.QuantizedWeight.Packed.numel() : l.Base.InFeatures * l.Base.OutFeatures);
        return (trainable, all);
    }

    /// <summary>PEFT's <c>print_trainable_parameters</c> line, byte for byte:
    /// <c>trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.0622</c>.</summary>
    public static string TrainableParametersSummary(this nn.Module model)
    {
        var (trainable, all) = model.ParameterCounts();
        var percent = all == 0 ? 0 : 100.0 * trainable / all;
        var inv = CultureInfo.InvariantCulture;
        return $"trainable params: {trainable.ToString("N0", inv)} || all params: {all.ToString("N0", inv)} || trainable%: {percent.ToString("F4", inv)}";
    }

    private sealed class Scope(Action onDispose) : IDisposable
    {
        private Action? _onDispose = onDispose;

        public void Dispose()
        {
            _onDispose?.Invoke();
            _onDispose = null;
        }
    }
}
