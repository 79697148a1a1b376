using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// PEFT adapter directories of every method (C1–C6): <c>adapter_config.json</c> + <c>adapter_model.safetensors</c>
/// (F32, <c>{"format":"pt"}</c>, keys <c>base_model.model.{path}.{suffix}</c>). The adapter named <c>default</c> lives
/// in the directory itself, any other in a subdirectory of its name. Loading dispatches on <c>peft_type</c> and fails
/// loudly: a missing or unexpected key or a shape mismatch is an error listing the keys, never a silent no-op.
/// </summary>
public static class PeftAdapter
{
    public const string WeightsFileName = "adapter_model.safetensors";
    public const string DefaultName = "default";

    private const int Listed = 10;

    /// <summary>The directory adapter <paramref name="adapterName"/> is saved in under <paramref name="root"/>.</summary>
    public static string DirectoryFor(string root, string adapterName) =>
        adapterName == DefaultName ? root : Path.Combine(root, adapterName);

    /// <summary>The adapter's tensors under their PEFT keys (fp32, CPU): its own parameters, plus what
    /// <paramref name="config"/>'s method trains besides (modules_to_save, LoRA's biases).</summary>
    public static Dictionary<string, Tensor> StateDict(nn.Module model, string adapterName = DefaultName, PeftConfig? config = null)
    {
        // The intermediate copies (detach, dtype, device) are disposed here; only the returned tensors are the caller's.
        using var scope = NewDisposeScope();
        return Parameters(model, adapterName, config).ToDictionary(p => p.Key, p => p.Value.detach().to(ScalarType.Float32).cpu().contiguous().MoveToOuterDisposeScope(), StringComparer.Ordinal);
    }

    /// <summary>PEFT key → the live parameter, for everything the adapter file holds.</summary>
    private static Dictionary<string, TorchSharp.Modules.Parameter> Parameters(nn.Module model, string adapterName, PeftConfig? config)
    {
        var result = model.AdapterParameters(adapterName).ToDictionary(p => p.PeftKey, p => p.Parameter, StringComparer.Ordinal);
        if (config is not null)
        {
            foreach (var (key, parameter) in PeftMethods.For(config).ExtraTrainables(model, config, adapterName))
                result.TryAdd(key, parameter);
        }

        return result;
    }

    /// <summary>Writes adapter <paramref name="adapterName"/> of <paramref name="model"/> as a PEFT directory
    /// (atomically, file by file) with <paramref name="config"/> in its saved form (<see cref="ForSaving"/>); returns
    /// the directory written. The method decides the layout (<see cref="PeftMethod.WriteFiles"/>: PEFT's; AdapterHub's
    /// for bottleneck adapters).</summary>
    public static string Save(nn.Module model, string root, PeftConfig config, string adapterName = DefaultName)
    {
        var method = PeftMethods.For(config);
        method.CheckDescribes(model, config, adapterName);
        var dir = DirectoryFor(root, adapterName);
        Directory.CreateDirectory(dir);
        method.WriteFiles(model, dir, config, adapterName);
        return dir;
    }

    /// <summary>PEFT's layout for a layer-adapting method (<see cref="PeftMethod.WriteFiles"/>'s default).</summary>
    internal static void WriteLayerAdapter(nn.Module model, string dir, PeftConfig config, string adapterName)
    {
        var method = PeftMethods.For(config);
        var tensors = StateDict(model, adapterName, config);
        if (tensors.Count == 0)
            throw new LoraException($"the model has no adapter named '{adapterName}' to save.");
        try
        {
            SafeTensorsWriter.Write(Path.Combine(dir, WeightsFileName), tensors);
        }
        finally
        {
            foreach (var t in tensors.Values)
                t.Dispose();
        }

        PeftConfigFile.Write(dir, method.ForSaving(model, config, adapterName));
    }

    /// <summary>The config as it is saved for adapter <paramref name="adapterName"/> of <paramref name="model"/>:
    /// PEFT forms kept, this product's leaf-or-path regex and <c>all-linear</c> replaced by the list of what they
    /// resolved to, so PEFT selects the same layers.</summary>
    public static PeftConfig ForSaving(nn.Module model, PeftConfig config, string adapterName = DefaultName) =>
        PeftMethods.For(config).ForSaving(model, config, adapterName);

    /// <summary>
    /// Reads the PEFT adapter in <paramref name="directory"/> (any method, by its <c>peft_type</c>), attaches it to
    /// <paramref name="model"/> as <paramref name="adapterName"/> and fills its weights (F32/F16/BF16 accepted). Keys
    /// may carry the <c>base_model.model.</c> prefix or not. On any error the model is left without the adapter.
    /// </summary>
    public static PeftConfig Load(nn.Module model, string directory, string adapterName = DefaultName, Action<string>? warnings = null)
    {
        var config = PeftConfigFile.Read(directory, warnings);
        var method = PeftMethods.For(config);
        WeightsPath(directory, method.WeightsFileName);
        method.Inject(model, method.ForLoading(config), adapterName);
        try
        {
            method.ReadFiles(model, directory, config, adapterName);
        }
        catch
        {
            Remove(model, adapterName);
            throw;
        }

        return config;
    }

    /// <summary><see cref="Load"/>, requiring an adapter of config type <typeparamref name="TConfig"/>.</summary>
    public static TConfig Load<TConfig>(nn.Module model, string directory, string adapterName = DefaultName, Action<string>? warnings = null)
        where TConfig : PeftConfig
    {
        var config = PeftConfigFile.Read(directory, warnings);
        if (config is not TConfig)
            throw new LoraException($"{directory}: the adapter is {config.PeftType}, not the {typeof(TConfig).Name} this needs.");
        return (TConfig)Load(model, directory, adapterName, warnings);
    }

    /// <summary>
    /// Fills adapter <paramref name="adapterName"/>, already attached to <paramref name="model"/> (e.g. by generated
    /// typed injection), from the PEFT directory <paramref name="directory"/>, after checking that its
    /// <c>adapter_config.json</c> is of <paramref name="plan"/>'s method and agrees with it where the adapters' shapes
    /// and math depend on it (LoRA: r, lora_alpha, use_rslora, use_dora, lora_bias). Fails loudly like
    /// <see cref="Load"/> (missing/unexpected keys, shapes); returns the file's config.
    /// </summary>
    public static PeftConfig LoadWeights(nn.Module model, string directory, PeftConfig plan, string adapterName = DefaultName, Action<string>? warnings = null)
    {
        var config = PeftConfigFile.Read(directory, warnings);
        var differences = config.PeftType != plan.PeftType
            ? [$"peft_type = {config.PeftType} (plan: {plan.PeftType})"]
            : PeftMethods.For(plan).Differences(config, plan).ToList();
        if (differences.Count > 0)
            throw new LoraException($"{directory}: adapter_config.json does not match the model's {PeftMethods.For(plan).DisplayName} plan: {string.Join("; ", differences)}.");

        PeftMethods.For(config).ReadFiles(model, directory, config, adapterName);
        return config;
    }

    /// <summary>
    /// Fills the weights of adapter <paramref name="adapterName"/>, already attached to <paramref name="model"/>, from
    /// the PEFT directory <paramref name="directory"/> (strictly: same keys and shapes). Used to resume training.
    /// </summary>
    public static void LoadWeights(nn.Module model, string directory, string adapterName = DefaultName)
    {
        var config = PeftConfigFile.Read(directory);
        PeftMethods.For(config).ReadFiles(model, directory, config, adapterName);
    }

    /// <summary>Removes adapter <paramref name="adapterName"/> from every layer that has it, and restores base
    /// parameters it had replaced (biases, modules_to_save).</summary>
    public static void Remove(nn.Module model, string adapterName)
    {
        BaseOverrides.Restore(model, adapterName);
        foreach (var layer in model.modules().OfType<IAdapterHost>())
        {
            if (layer.HasAdapter(adapterName))
                layer.DeleteAdapter(adapterName);
        }
    }

    /// <summary>The weights file <paramref name="fileName"/> of the adapter directory (or of the directory holding the
    /// given config file).</summary>
    /// <exception cref="LoraException">It does not exist.</exception>
    public static string WeightsPath(string directory, string fileName = WeightsFileName)
    {
        var path = Path.Combine(Directory.Exists(directory) ? directory : Path.GetDirectoryName(directory)!, fileName);
        return File.Exists(path)
            ? path
            : throw new LoraException($"{path}: file not found (the adapter directory holds adapter_config.json and {fileName}).");
    }

    /// <summary>PEFT's layer keys (<see cref="PeftMethod.ReadFiles"/>'s default).</summary>
    /// <remarks><paramref name="othersKeys"/> selects file keys (PEFT-prefixed) that the caller reads itself and the
    /// strict key check leaves out (a reward adapter's <c>score</c> head when it starts PPO's critic).</remarks>
    internal static void FillLayerAdapter(nn.Module model, string directory, PeftConfig config, string adapterName, Func<string, bool>? othersKeys = null)
    {
        var weightsPath = WeightsPath(directory);
        using var file = SafeTensorsFile.Open(weightsPath);
        Fill(model, adapterName, config, file, weightsPath, othersKeys);
    }

    private static void Fill(nn.Module model, string adapterName, PeftConfig config, SafeTensorsFile file, string where, Func<string, bool>? othersKeys = null)
    {
        var expected = Parameters(model, adapterName, config);
        var own = model.AdapterParameters(adapterName).Select(p => p.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);

        var fileKeys = file.Tensors.Keys.ToDictionary(AdapterKeys.WithPeftPrefix, k => k, StringComparer.Ordinal);
        if (othersKeys is not null)
            fileKeys = fileKeys.Where(k => !othersKeys(k.Key)).ToDictionary(k => k.Key, k => k.Value, StringComparer.Ordinal);
        var missing = expected.Keys.Where(k => !fileKeys.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var unexpected = fileKeys.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0)
                parts.Add($"{missing.Count} missing key(s): {List(missing)}");
            if (unexpected.Count > 0)
                parts.Add($"{unexpected.Count} unexpected key(s): {List(unexpected)}");
            throw new LoraException($"{where}: the adapter weights do not match its adapter_config.json on this model: {string.Join("; ", parts)}.");
        }

        foreach (var (key, parameter) in expected)
        {
            var entry = file.Tensors[fileKeys[key]];
            if (!entry.Shape.SequenceEqual(parameter.shape))
                throw new LoraException($"{where}: '{entry.Name}' has shape ({string.Join(", ", entry.Shape)}) but this model needs ({string.Join(", ", parameter.shape)}) (r, target layer sizes or the base model differ).");
        }

        using var noGrad = no_grad();
        foreach (var (key, parameter) in expected)
        {
            // A base parameter the adapter overrides (a trained bias, a module to save) is restored when it is removed.
            if (!own.Contains(parameter))
                BaseOverrides.Remember(model, adapterName, parameter);
            using var value = file.Load(fileKeys[key], parameter.dtype, parameter.device);
            parameter.copy_(value);
        }
    }

    private static string List(IReadOnlyList<string> keys) =>
        string.Join(", ", keys.Take(Listed)) + (keys.Count > Listed ? $" (and {keys.Count - Listed} more)" : string.Empty);
}
