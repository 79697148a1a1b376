using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// PEFT's <c>modules_to_save</c> (<c>utils/other.py</c>, <c>_set_trainable</c>: a module whose path ends with a listed
/// name): every parameter of such a module trains in full and is saved with the adapter as
/// <c>base_model.model.{name}</c> (PEFT drops its <c>modules_to_save.{adapter}</c> infix on save).
/// </summary>
public static class ModulesToSave
{
    /// <summary>The parameters of the modules <paramref name="config"/> saves, with their PEFT keys, in model order.</summary>
    public static IEnumerable<(string PeftKey, Parameter Parameter)> Entries(nn.Module model, TunerConfig config)
    {
        var saved = Paths(model, config);
        if (saved.Count == 0)
            yield break;
        var adapterParameters = model.AdapterParameters().Select(p => p.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var (name, parameter) in model.named_parameters())
        {
            var owner = name.Contains('.', StringComparison.Ordinal) ? name[..name.LastIndexOf('.')] : string.Empty;
            if (saved.Contains(owner) && !adapterParameters.Contains(parameter))
                yield return (AdapterKeys.PeftPrefix + name, parameter);
        }
    }

    /// <summary>PEFT's <c>task_type</c> of a sequence-classification (reward) model.</summary>
    public const string SequenceClassificationTask = "SEQ_CLS";

    /// <summary>The head names <c>PeftModelForSequenceClassification</c> adds to <c>modules_to_save</c>
    /// (<c>peft_model.py</c>: <c>classifier_module_names</c>); a SEQ_CLS config may name one the model lacks (PEFT
    /// lists both), which is not an error.</summary>
    public static IReadOnlyList<string> ClassifierModuleNames { get; } = ["classifier", "score"];

    /// <summary>Paths of the modules named by <c>modules_to_save</c>.</summary>
    /// <exception cref="LoraException">A name matches no module of the model.</exception>
    public static HashSet<string> Paths(nn.Module model, TunerConfig config)
    {
        if (config.ModulesToSave is not { Count: > 0 } names)
            return [];
        var paths = PeftTargeting.BaseModules(model)
            .Select(m => m.Path)
            .Where(p => p.Length > 0 && names.Any(n => p == n || p.EndsWith("." + n, StringComparison.Ordinal)))
            .ToHashSet(StringComparer.Ordinal);
        var missing = names.Where(n => !paths.Any(p => p == n || p.EndsWith("." + n, StringComparison.Ordinal)))
            .Where(n => !(config.TaskType == SequenceClassificationTask && ClassifierModuleNames.Contains(n)))
            .ToList();
        if (missing.Count > 0)
            throw new LoraException($"modules_to_save names {string.Join(", ", missing)}, which this model does not have.");
        var quantized = Quantization.ModelQuantizer.QuantizedLayers(model)
            .Where(l => paths.Any(p => l.Path == p || l.Path.StartsWith(p + ".", StringComparison.Ordinal)))
            .Select(l => l.Path)
            .ToList();
        if (quantized.Count > 0)
            throw new LoraException($"modules_to_save includes quantized layers ({string.Join(", ", quantized.Take(3))}{(quantized.Count > 3 ? ", ..." : "")}), whose weights cannot train: load the model with them left dense (QuantizationConfig.Skipping, as --quantize and [Quantize] do for modules_to_save).");
        return paths;
    }
}
