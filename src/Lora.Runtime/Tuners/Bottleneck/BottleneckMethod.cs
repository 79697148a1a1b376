using System.Text.Json.Nodes;
using Lora.Models;
using Lora.Modules;
using Lora.Peft;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Tuners.Bottleneck;

/// <summary>
/// Bottleneck adapters (Houlsby et al. 2019, Pfeiffer et al. 2020), as AdapterHub's <c>adapters</c> library builds
/// and stores them (<c>methods/bottleneck.py</c>, <c>methods/modeling.py</c>): a <see cref="BottleneckAdapter"/> in
/// the <see cref="ResidualAdapterLayer"/> slots of every decoder block that the config's <c>mh_adapter</c> /
/// <c>output_adapter</c> select (less <c>leave_out</c>). PEFT has no such method, so the directory is AdapterHub's
/// (<see cref="AdapterHubFormat"/>), recognised by its <c>adapter_config.json</c> (no <c>peft_type</c>, a
/// <c>config</c> object). The id <see cref="PeftTypeName"/> is this runtime's only. Not mergeable (non-linear).
/// </summary>
public sealed class BottleneckMethod : LayerTunerMethod<BottleneckConfig>
{
    /// <summary>This runtime's id for the method (not a PEFT <c>peft_type</c>; never written to a file).</summary>
    public const string PeftTypeName = "BOTTLENECK";

    /// <summary>transformers' class names for AdapterHub's <c>model_class</c> (informational).</summary>
    private static readonly Dictionary<string, string> ModelClasses = new(StringComparer.Ordinal)
    {
        ["llama"] = "LlamaForCausalLM",
        ["mistral"] = "MistralForCausalLM",
        ["qwen2"] = "Qwen2ForCausalLM",
        ["gpt2"] = "GPT2LMHeadModel",
    };

    private BottleneckMethod()
    {
    }

    public static BottleneckMethod Instance { get; } = new();

    public override string PeftType => PeftTypeName;

    public override string DisplayName => "bottleneck adapter";

    public override string WeightsFileName => AdapterHubFormat.WeightsFileName;

    public override PeftConfig ReadConfig(PeftConfigFields fields) =>
        throw fields.Error("peft_type", $"is \"{PeftTypeName}\", which PEFT does not have: bottleneck adapters are stored in AdapterHub's format (adapter_config.json with a \"config\" object, {AdapterHubFormat.WeightsFileName}).");

    public override void WriteConfig(PeftConfig config, IDictionary<string, JsonNode?> fields) =>
        throw new NotSupportedException("bottleneck adapters are written in AdapterHub's format (AdapterHubFormat).");

    public override PeftConfig? ReadForeignConfig(PeftConfigFields fields) => AdapterHubFormat.Read(fields);

    /// <summary>The slots from <c>mh_adapter</c>/<c>output_adapter</c>; the bottleneck width from the size or the
    /// reduction factor (AdapterHub: <c>int(hidden_size // reduction_factor)</c>, at least 1); the other switches
    /// checked.</summary>
    public override PeftConfig Prepare(nn.Module model, PeftConfig config)
    {
        var bn = Typed(config);
        if (!bn.MhAdapter && !bn.OutputAdapter)
            throw new LoraException("bottleneck adapter: neither mh_adapter nor output_adapter is set, so no block would get an adapter.");
        _ = new BottleneckActivation(bn.NonLinearity);
        if (!BottleneckInit.All.Contains(bn.InitWeights))
            throw new LoraException($"bottleneck adapter: init_weights \"{bn.InitWeights}\" is not one of {string.Join(", ", BottleneckInit.All)}.");
        if (bn.Dropout is < 0 or >= 1)
            throw new LoraException($"bottleneck adapter: dropout must be in [0, 1) (got {bn.Dropout}).");
        var causal = model as CausalLM
            ?? throw new LoraException($"bottleneck adapters adapt a causal language model (CausalLM), not a {model.GetType().Name}.");
        if (!causal.modules().OfType<ResidualAdapterLayer>().Any())
            throw new LoraException($"{causal.GetType().Name} has no block slots for bottleneck adapters (ResidualAdapterLayer fields named attention_adapters / output_adapters in its decoder blocks, as the built-in architectures have).");
        var hidden = causal.Config.HiddenSize;
        double factor;
        if (bn.Size is { } size)
        {
            if (bn.ReductionFactor is not null)
                throw new LoraException("bottleneck adapter: give the size or the reduction factor, not both.");
            if (size <= 0 || size > hidden)
                throw new LoraException($"bottleneck adapter: size must be in 1..{hidden} (the hidden size), got {size}.");
            factor = (double)hidden / size;
            if (Width(hidden, factor) != size)
                throw new LoraException($"bottleneck adapter: size {size} is not reachable as AdapterHub's hidden_size // reduction_factor ({hidden} // {factor}); choose a size that divides {hidden}, or give --reduction-factor.");
        }
        else
        {
            factor = bn.ReductionFactor ?? 16;
            if (!(factor > 0) || double.IsInfinity(factor))
                throw new LoraException($"bottleneck adapter: reduction_factor must be > 0 (got {factor}).");
        }

        return bn with
        {
            ReductionFactor = factor,
            Size = null,
            TargetModules = TargetModules.FromNames(bn.Slots),
            Hidden = hidden,
            Device = causal.parameters().First().device,
        };
    }

    /// <summary>AdapterHub's <c>int(hidden_size // reduction_factor)</c>, at least 1.</summary>
    public static int Width(int hidden, double reductionFactor) => Math.Max(1, (int)Math.Floor(hidden / reductionFactor));

    public override string? CannotHost(IAdapterHost host, string path, BottleneckConfig config) =>
        host is IAdapterHost<ResidualAdapter> ? null : $"{path} ({host.GetType().Name}) cannot host a bottleneck adapter (only a decoder block's attention_adapters / output_adapters slots can).";

    public override nn.Module Attach(IAdapterHost host, string path, BottleneckConfig config, string adapterName)
    {
        if (host is not ResidualAdapterLayer slot)
            throw new LoraException($"{path} ({host.GetType().Name}) cannot host a bottleneck adapter.");
        var hidden = config.Hidden ?? throw new LoraException("bottleneck adapter: the config is not prepared for a model (PeftInjector.Prepare).");
        var adapter = new BottleneckAdapter(hidden, Width(hidden, config.ReductionFactor!.Value), config.NonLinearity, config.OriginalLnBefore,
            config.Scaling, config.Dropout, config.InitWeights, config.Device);
        return slot.AddAdapter(adapterName, adapter);
    }

    /// <summary>Nothing else trains (AdapterHub's <c>train_adapter</c> freezes the rest).</summary>
    public override IEnumerable<(string PeftKey, TorchSharp.Modules.Parameter Parameter)> ExtraTrainables(nn.Module model, PeftConfig config, string adapterName) => [];

    public override PeftConfig ForSaving(nn.Module model, PeftConfig config, string adapterName, IReadOnlyList<string>? adaptedPaths = null) =>
        Prepare(model, config);

    /// <summary>AdapterHub's directory: <c>adapter_config.json</c> and <c>adapter.safetensors</c> with the model's
    /// state-dict keys of the adapter (the adapter's name in them is AdapterHub's <c>name</c>).</summary>
    public override void WriteFiles(nn.Module model, string directory, PeftConfig config, string adapterName)
    {
        var causal = model as CausalLM ?? throw new LoraException("bottleneck adapters are saved from a CausalLM.");
        var saved = (BottleneckConfig)ForSaving(model, config, adapterName);
        var name = saved.Name ?? adapterName;
        using var scope = NewDisposeScope();
        var tensors = causal.AdapterParameters(adapterName)
            .ToDictionary(p => AdapterKeys.ModelName(p.HostPath, name, p.Name), p => p.Parameter.detach().to(ScalarType.Float32).cpu().contiguous(), StringComparer.Ordinal);
        if (tensors.Count == 0)
            throw new LoraException($"the model has no bottleneck adapter named '{adapterName}' to save.");
        SafeTensorsWriter.Write(Path.Combine(directory, AdapterHubFormat.WeightsFileName), tensors);
        AdapterHubFormat.WriteConfig(directory, saved, name, causal.Config.ModelType, causal.Config.HiddenSize, ModelClasses.GetValueOrDefault(causal.Config.ModelType));
    }

    /// <summary>Strict: every adapter parameter in the file under AdapterHub's key (with the file's <c>name</c>; keys of
    /// a headless AdapterHub model, without <c>model.</c>/<c>transformer.</c>, are accepted), nothing else.</summary>
    public override void ReadFiles(nn.Module model, string directory, PeftConfig config, string adapterName)
    {
        var bn = Typed(config);
        var causal = model as CausalLM ?? throw new LoraException("bottleneck adapters load into a CausalLM.");
        if (bn.ModelType is { } type && type != causal.Config.ModelType)
            throw new LoraException($"{directory}: the AdapterHub adapter was trained on a '{type}' model; this one is '{causal.Config.ModelType}'.");
        var pickled = Path.Combine(directory, AdapterHubFormat.PickledWeightsFileName);
        var weights = Path.Combine(directory, AdapterHubFormat.WeightsFileName);
        if (!File.Exists(weights) && File.Exists(pickled))
            throw new LoraException($"{pickled}: AdapterHub's pickled weights are not read; save the adapter with model.save_adapter(dir, name, use_safetensors=True) to get {AdapterHubFormat.WeightsFileName}.");
        var path = PeftAdapter.WeightsPath(directory, AdapterHubFormat.WeightsFileName);
        using var file = SafeTensorsFile.Open(path);
        var name = bn.Name ?? adapterName;
        var expected = causal.AdapterParameters(adapterName).ToDictionary(p => AdapterKeys.ModelName(p.HostPath, name, p.Name), p => p.Parameter, StringComparer.Ordinal);
        var prefix = causal.BasePrefix + ".";
        var fileKeys = file.Tensors.Keys.ToDictionary(k => expected.ContainsKey(k) || !expected.ContainsKey(prefix + k) ? k : prefix + k, k => k, StringComparer.Ordinal);
        var missing = expected.Keys.Where(k => !fileKeys.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var unexpected = fileKeys.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new LoraException($"{path}: the adapter weights do not match its adapter_config.json on this model: {(missing.Count > 0 ? $"{missing.Count} missing key(s): {string.Join(", ", missing.Take(5))}" : string.Empty)}{(missing.Count > 0 && unexpected.Count > 0 ? "; " : string.Empty)}{(unexpected.Count > 0 ? $"{unexpected.Count} unexpected key(s): {string.Join(", ", unexpected.Take(5))}" : string.Empty)}.");
        using var noGrad = no_grad();
        foreach (var (key, parameter) in expected)
        {
            var entry = file.Tensors[fileKeys[key]];
            if (!entry.Shape.SequenceEqual(parameter.shape))
                throw new LoraException($"{path}: '{entry.Name}' has shape ({string.Join(", ", entry.Shape)}) but this model needs ({string.Join(", ", parameter.shape)}) (reduction_factor or the base model differ).");
            using var value = file.Load(fileKeys[key], parameter.dtype, parameter.device);
            parameter.copy_(value);
        }
    }

    public override IEnumerable<string> Differences(PeftConfig file, PeftConfig plan)
    {
        var (f, p) = (Typed(file), Typed(plan));
        if (f.MhAdapter != p.MhAdapter || f.OutputAdapter != p.OutputAdapter)
            yield return $"mh_adapter/output_adapter = {f.MhAdapter}/{f.OutputAdapter} (plan: {p.MhAdapter}/{p.OutputAdapter})";
        if (!string.Equals(f.NonLinearity, p.NonLinearity, StringComparison.OrdinalIgnoreCase))
            yield return $"non_linearity = {f.NonLinearity} (plan: {p.NonLinearity})";
        if (f.OriginalLnBefore != p.OriginalLnBefore)
            yield return $"original_ln_before = {f.OriginalLnBefore} (plan: {p.OriginalLnBefore})";
        if (f.Scaling != p.Scaling)
            yield return $"scaling = {f.Scaling} (plan: {p.Scaling})";
    }

    public override string? Describe(nn.Module model, PeftConfig config, string adapterName)
    {
        var slots = model.AdaptedLayers().Where(l => l.Layer is ResidualAdapterLayer && l.Layer.HasAdapter(adapterName)).ToList();
        if (slots.Count == 0)
            return null;
        var adapter = (BottleneckAdapter)slots[0].Layer.GetAdapter(adapterName);
        return $"bottleneck adapter: {slots.Count} slot(s) ({string.Join(", ", slots.Select(s => s.Path[(s.Path.LastIndexOf('.') + 1)..]).Distinct())}), {adapter.Hidden} → {adapter.Size} → {adapter.Hidden}, {adapter.Activation.Name}, reads {(adapter.OriginalLnBefore ? "x + s (Pfeiffer)" : "s (Houlsby)")}";
    }
}
