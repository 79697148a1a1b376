using System.Globalization;
using Lora.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Adapters;

/// <summary>Model-wide adapter operations (PEFT's <c>PeftModel</c> methods) over every adapter-hosting layer.</summary>
public static class LoraModelExtensions
{
    /// <summary>The layers that host at least one adapter, with their paths.</summary>
    public static IEnumerable<(string Path, IAdapterHost Layer)> AdaptedLayers(this nn.Module model) =>
        model.named_modules().Where(m => m.module is IAdapterHost host && host.AdapterNames.Any()).Select(m => (m.name, (IAdapterHost)m.module));

    /// <summary>Folds the active adapters into the base weights (<paramref name="safe"/>: refuse NaN/Inf; on refusal
    /// the layers merged so far are unmerged again, so the model is unchanged).</summary>
    public static void MergeAdapters(this nn.Module model, bool safe = true)
    {
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
    public static void MergeAndUnload(this nn.Module model, bool safe = true)
    {
        model.MergeAdapters(safe);
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

    /// <summary>Makes <paramref name="names"/> the active adapters on every layer that has them all.</summary>
    public static void SetActiveAdapters(this nn.Module model, params string[] names)
    {
        var any = false;
        foreach (var (_, layer) in model.AdaptedLayers())
        {
            if (names.All(layer.HasAdapter))
            {
                layer.SetActiveAdapters(names);
                any = true;
            }
        }

        if (!any)
            throw new LoraException($"no layer has the adapter(s) {string.Join(", ", names)}.");
    }

    /// <summary>Freezes the base model and makes the adapters (and the biases <paramref name="bias"/> asks for)
    /// trainable. Returns the trainable parameters, named.</summary>
    public static IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> MarkOnlyAdaptersTrainable(this nn.Module model, LoraBias bias = LoraBias.None)
    {
        var adaptedPaths = model.AdaptedLayers().Select(l => l.Path + ".").ToList();
        var trainable = new List<(string, TorchSharp.Modules.Parameter)>();
        foreach (var (name, parameter) in model.named_parameters())
        {
            var isBias = name.EndsWith(".bias", StringComparison.Ordinal) && !AdapterKeys.IsAdapterParameter(name);
            var train = AdapterKeys.IsAdapterParameter(name)
                || (bias == LoraBias.All && isBias)
                || (bias == LoraBias.LoraOnly && isBias && adaptedPaths.Any(p => name.StartsWith(p, StringComparison.Ordinal)));
            parameter.requires_grad = train;
            if (train)
                trainable.Add((name, parameter));
        }

        return trainable;
    }

    /// <summary>Freezes the base model and makes adapter <paramref name="adapterName"/>'s parameters trainable, with
    /// the biases and modules_to_save its <paramref name="config"/> asks for. Returns the trainable parameters.</summary>
    public static IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> MarkTrainable(this nn.Module model, LoraConfig config, string adapterName = "default")
    {
        var extra = ExtraTrainables.Entries(model, config, adapterName).Select(e => e.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);
        var trainable = new List<(string, TorchSharp.Modules.Parameter)>();
        foreach (var (name, parameter) in model.named_parameters())
        {
            var train = (AdapterKeys.IsAdapterParameter(name) && AdapterKeys.ToPeft(name).Adapter == adapterName) || extra.Contains(parameter);
            parameter.requires_grad = train;
            if (train)
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
