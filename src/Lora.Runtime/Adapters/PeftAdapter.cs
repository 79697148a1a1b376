using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Adapters;

/// <summary>
/// PEFT adapter directories (C1–C6): <c>adapter_config.json</c> + <c>adapter_model.safetensors</c> (F32,
/// <c>{"format":"pt"}</c>, keys <c>base_model.model.{path}.lora_A.weight</c> ...). The adapter named
/// <c>default</c> lives in the directory itself, any other in a subdirectory of its name. Loading fails loudly:
/// a missing or unexpected key or a shape mismatch is an error listing the keys, never a silent no-op.
/// </summary>
public static class PeftAdapter
{
    public const string WeightsFileName = "adapter_model.safetensors";
    public const string DefaultName = "default";

    private const int Listed = 10;

    /// <summary>The directory adapter <paramref name="adapterName"/> is saved in under <paramref name="root"/>.</summary>
    public static string DirectoryFor(string root, string adapterName) =>
        adapterName == DefaultName ? root : Path.Combine(root, adapterName);

    /// <summary>The adapter's tensors under their PEFT keys (fp32, CPU): its LoRA factors, plus the biases and
    /// modules_to_save parameters <paramref name="config"/> asks for (<see cref="ExtraTrainables"/>).</summary>
    public static Dictionary<string, Tensor> StateDict(nn.Module model, string adapterName = DefaultName, LoraConfig? config = null) =>
        Parameters(model, adapterName, config).ToDictionary(p => p.Key, p => p.Value.detach().to(ScalarType.Float32).cpu().contiguous(), StringComparer.Ordinal);

    /// <summary>PEFT key → the live parameter, for everything the adapter file holds.</summary>
    private static Dictionary<string, TorchSharp.Modules.Parameter> Parameters(nn.Module model, string adapterName, LoraConfig? config)
    {
        var result = new Dictionary<string, TorchSharp.Modules.Parameter>(StringComparer.Ordinal);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (!AdapterKeys.IsAdapterParameter(name))
                continue;
            var (adapter, key) = AdapterKeys.ToPeft(name);
            if (adapter == adapterName)
                result[key] = parameter;
        }

        if (config is not null)
        {
            foreach (var (key, parameter) in ExtraTrainables.Entries(model, config, adapterName))
                result[key] = parameter;
        }

        return result;
    }

    /// <summary>Writes adapter <paramref name="adapterName"/> of <paramref name="model"/> as a PEFT directory
    /// (atomically, file by file) and returns the directory written.</summary>
    public static string Save(nn.Module model, string root, LoraConfig config, string adapterName = DefaultName)
    {
        CheckConfigDescribes(model, config, adapterName);
        var dir = DirectoryFor(root, adapterName);
        Directory.CreateDirectory(dir);
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

        PeftConfigFile.Write(dir, ForSaving(model, config));
        return dir;
    }

    /// <summary>A saved config must reproduce each layer's rank and α, or PEFT would rebuild different shapes.</summary>
    private static void CheckConfigDescribes(nn.Module model, LoraConfig config, string adapterName)
    {
        foreach (var (path, module) in model.named_modules())
        {
            (int Rank, double Alpha)? actual = module switch
            {
                Modules.LinearLayer l when l.HasAdapter(adapterName) => (l.Adapter(adapterName).Rank, l.Adapter(adapterName).Alpha),
                Modules.EmbeddingLayer e when e.HasAdapter(adapterName) => (e.Adapter(adapterName).Rank, e.Adapter(adapterName).Alpha),
                _ => null,
            };
            if (actual is { } a && config.RankAndAlphaFor(path) is var expected && (expected.R != a.Rank || Math.Abs(expected.Alpha - a.Alpha) > 1e-9))
                throw new LoraException($"the config says r={expected.R}, lora_alpha={expected.Alpha} for {path}, but adapter '{adapterName}' there has r={a.Rank}, alpha={a.Alpha}; save it with a matching config (rank_pattern/alpha_pattern for per-layer values).");
        }
    }

    /// <summary>
    /// Reads the PEFT adapter in <paramref name="directory"/>, attaches it to <paramref name="model"/> as
    /// <paramref name="adapterName"/> and fills its weights (F32/F16/BF16 accepted). Keys may carry the
    /// <c>base_model.model.</c> prefix or not. On any error the model is left without the adapter.
    /// </summary>
    public static LoraConfig Load(nn.Module model, string directory, string adapterName = DefaultName, Action<string>? warnings = null)
    {
        var config = PeftConfigFile.Read(directory, warnings);
        var weightsPath = WeightsPath(directory);
        using var file = SafeTensorsFile.Open(weightsPath);

        LoraInjector.Inject(model, config, adapterName, LoraInit.Default);
        try
        {
            Fill(model, adapterName, config, file, weightsPath);
        }
        catch
        {
            Remove(model, adapterName);
            throw;
        }

        return config;
    }

    /// <summary>
    /// Fills adapter <paramref name="adapterName"/>, already attached to <paramref name="model"/> (e.g. by generated
    /// typed injection), from the PEFT directory <paramref name="directory"/>, after checking that its
    /// <c>adapter_config.json</c> agrees with <paramref name="plan"/> on r, lora_alpha, use_rslora, use_dora and
    /// lora_bias. Fails loudly like <see cref="Load"/> (missing/unexpected keys, shapes); returns the file's config.
    /// </summary>
    public static LoraConfig LoadWeights(nn.Module model, string directory, LoraConfig plan, string adapterName = DefaultName, Action<string>? warnings = null)
    {
        var config = PeftConfigFile.Read(directory, warnings);
        var differences = new List<string>();
        if (config.R != plan.R)
            differences.Add($"r = {config.R} (plan: {plan.R})");
        if (config.LoraAlpha != plan.LoraAlpha)
            differences.Add($"lora_alpha = {config.LoraAlpha} (plan: {plan.LoraAlpha})");
        if (config.UseRsLora != plan.UseRsLora)
            differences.Add($"use_rslora = {config.UseRsLora} (plan: {plan.UseRsLora})");
        if (config.UseDora != plan.UseDora)
            differences.Add($"use_dora = {config.UseDora} (plan: {plan.UseDora})");
        if (config.LoraBiasTerm != plan.LoraBiasTerm)
            differences.Add($"lora_bias = {config.LoraBiasTerm} (plan: {plan.LoraBiasTerm})");
        if (config.RankPattern.Count > 0 || config.AlphaPattern.Count > 0)
            differences.Add("rank_pattern/alpha_pattern are set (a plan has one r and alpha)");
        if (differences.Count > 0)
            throw new LoraException($"{directory}: adapter_config.json does not match the model's LoRA plan: {string.Join("; ", differences)}.");

        Fill(model, adapterName, config, directory);
        return config;
    }

    /// <summary>
    /// Fills the weights of adapter <paramref name="adapterName"/>, already attached to <paramref name="model"/>, from
    /// the PEFT directory <paramref name="directory"/> (strictly: same keys and shapes). Used to resume training.
    /// </summary>
    public static void LoadWeights(nn.Module model, string directory, string adapterName = DefaultName) =>
        Fill(model, adapterName, PeftConfigFile.Read(directory), directory);

    /// <summary>The weights file of the adapter directory (or of the directory holding the given config file).</summary>
    private static string WeightsPath(string directory)
    {
        var path = Path.Combine(Directory.Exists(directory) ? directory : Path.GetDirectoryName(directory)!, WeightsFileName);
        return File.Exists(path)
            ? path
            : throw new LoraException($"{path}: file not found (a PEFT adapter directory holds adapter_config.json and {WeightsFileName}).");
    }

    private static void Fill(nn.Module model, string adapterName, LoraConfig config, string directory)
    {
        var weightsPath = WeightsPath(directory);
        using var file = SafeTensorsFile.Open(weightsPath);
        Fill(model, adapterName, config, file, weightsPath);
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

    private static void Fill(nn.Module model, string adapterName, LoraConfig config, SafeTensorsFile file, string where)
    {
        var expected = Parameters(model, adapterName, config);

        var fileKeys = file.Tensors.Keys.ToDictionary(AdapterKeys.WithPeftPrefix, k => k, StringComparer.Ordinal);
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
            if (!IsLoraKey(key))
                BaseOverrides.Remember(model, adapterName, parameter);
            using var value = file.Load(fileKeys[key], parameter.dtype, parameter.device);
            parameter.copy_(value);
        }
    }

    private static bool IsLoraKey(string key) => key.Contains(".lora_", StringComparison.Ordinal);

    /// <summary>
    /// The config as saved. PEFT's own forms are kept; <c>all-linear</c> and the leaf-or-path regex become the list
    /// of what they resolved to on this model — the leaf names when those select exactly the same layers (what PEFT
    /// itself writes for all-linear), else the full dotted paths — so PEFT selects the same set.
    /// </summary>
    public static LoraConfig ForSaving(nn.Module model, LoraConfig config)
    {
        if (config.TargetModules is null || config.TargetModules.IsPeftForm)
            return config;
        var resolved = LoraInjector.ResolveTargets(model, config).Select(t => t.Path).ToHashSet(StringComparer.Ordinal);
        var leaves = resolved.Select(p => p.Split('.')[^1]).Distinct(StringComparer.Ordinal).ToList();
        var byLeaf = config with { TargetModules = TargetModules.FromNames(leaves) };
        var leafSelection = LoraInjector.ResolveTargets(model, byLeaf).Select(t => t.Path).ToHashSet(StringComparer.Ordinal);
        return leafSelection.SetEquals(resolved) ? byLeaf : config with { TargetModules = TargetModules.FromNames(resolved.Order(StringComparer.Ordinal)) };
    }

    private static string List(IReadOnlyList<string> keys) =>
        string.Join(", ", keys.Take(Listed)) + (keys.Count > Listed ? $" (and {keys.Count - Listed} more)" : string.Empty);
}
