using Lora.Modules;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Adapters;

/// <summary>
/// The non-adapter parameters an adapter carries, with their PEFT keys:
/// <list type="bullet">
/// <item><c>bias="lora_only"</c>: the biases of adapted layers, saved as <c>base_model.model.{path}.base_layer.bias</c>
/// (PEFT's in-memory name for a wrapped layer's bias);</item>
/// <item><c>bias="all"</c>: those plus every other bias, as <c>base_model.model.{name}</c>;</item>
/// <item><c>modules_to_save</c>: every parameter of a module whose path ends with a listed name, as
/// <c>base_model.model.{name}</c> (PEFT drops its <c>modules_to_save.{adapter}</c> infix on save).</item>
/// </list>
/// </summary>
public static class ExtraTrainables
{
    public static IEnumerable<(string PeftKey, Parameter Parameter)> Entries(nn.Module model, LoraConfig config, string adapterName)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var adapted = model.named_modules()
            .Where(m => m.module is IAdapterHost host && host.HasAdapter(adapterName))
            .Select(m => m.name)
            .ToHashSet(StringComparer.Ordinal);
        var saved = ModulesToSavePaths(model, config);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (AdapterKeys.IsAdapterParameter(name))
                continue;
            var owner = name.Contains('.', StringComparison.Ordinal) ? name[..name.LastIndexOf('.')] : string.Empty;
            string? key = null;
            if (saved.Contains(owner))
                key = AdapterKeys.PeftPrefix + name;
            else if (name.EndsWith(".bias", StringComparison.Ordinal) && config.Bias != LoraBias.None)
            {
                if (adapted.Contains(owner))
                    key = AdapterKeys.PeftPrefix + owner + ".base_layer.bias";
                else if (config.Bias == LoraBias.All)
                    key = AdapterKeys.PeftPrefix + name;
            }

            if (key is not null && seen.Add(key))
                yield return (key, parameter);
        }
    }

    /// <summary>Paths of the modules named by <c>modules_to_save</c> (PEFT: the module path ends with the name).</summary>
    public static HashSet<string> ModulesToSavePaths(nn.Module model, LoraConfig config)
    {
        if (config.ModulesToSave is not { Count: > 0 } names)
            return [];
        var paths = model.named_modules()
            .Select(m => m.name)
            .Where(p => p.Length > 0 && !p.Contains("." + AdaptableModule<LoraAdapter>.AdaptersName, StringComparison.Ordinal)
                && names.Any(n => p == n || p.EndsWith("." + n, StringComparison.Ordinal)))
            .ToHashSet(StringComparer.Ordinal);
        var missing = names.Where(n => !paths.Any(p => p == n || p.EndsWith("." + n, StringComparison.Ordinal))).ToList();
        if (missing.Count > 0)
            throw new LoraException($"modules_to_save names {string.Join(", ", missing)}, which this model does not have.");
        return paths;
    }
}
