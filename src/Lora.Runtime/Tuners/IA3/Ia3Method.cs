using System.Text.Json.Nodes;
using Lora.Models;
using Lora.Modules;
using Lora.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Tuners.IA3;

/// <summary>
/// IA3 (PEFT <c>peft_type: "IA3"</c>, <c>tuners/ia3/</c>): an <see cref="Ia3Adapter"/> on each targeted linear layer,
/// scaling its input when it is one of the <c>feedforward_modules</c> and its output otherwise. Unset targets or
/// feed-forward modules take the model family's defaults, as PEFT's <c>IA3Model._prepare_adapter_config</c> does.
/// </summary>
public sealed class Ia3Method : LayerTunerMethod<Ia3Config>
{
    public const string PeftTypeName = "IA3";

    private Ia3Method()
    {
    }

    public static Ia3Method Instance { get; } = new();

    public override string PeftType => PeftTypeName;

    public override string DisplayName => "IA3";

    public override PeftConfig ReadConfig(PeftConfigFields fields)
    {
        var config = new Ia3Config
        {
            FeedforwardModules = fields.Targets("feedforward_modules"),
            InitIa3Weights = fields.Bool("init_ia3_weights") ?? true,
        };
        return config;
    }

    public override void WriteConfig(PeftConfig config, IDictionary<string, JsonNode?> fields)
    {
        var ia3 = Typed(config);
        fields["feedforward_modules"] = PeftConfigFile.TargetsNode(ia3.FeedforwardModules);
        fields["init_ia3_weights"] = ia3.InitIa3Weights;
    }

    /// <summary>Unset targets and feed-forward modules from the model's family; the list-form subset rule of
    /// <c>IA3Config.__post_init__</c>.</summary>
    public override PeftConfig Prepare(nn.Module model, PeftConfig config)
    {
        var ia3 = WithFamilyDefaults(model, Typed(config));
        if (ia3.FeedForwardNotInTargets() is { Count: > 0 } extra)
            throw new LoraException($"feedforward_modules {string.Join(", ", extra)} are not among target_modules ({ia3.TargetModules}); PEFT requires feedforward_modules to be a subset of target_modules.");
        return ia3;
    }

    /// <summary>Also refuses, for this product's leaf-or-path form (whose selection is known only against the model),
    /// feed-forward modules that are not targets: the rule PEFT applies to lists.</summary>
    public override IReadOnlyList<string> Inject(nn.Module model, PeftConfig config, string adapterName)
    {
        var ia3 = (Ia3Config)Prepare(model, config);
        if (ia3.FeedforwardModules is { LeafOrPathPattern: { } pattern })
        {
            var targets = ResolveTargets(model, ia3).Select(t => t.Path).ToHashSet(StringComparer.Ordinal);
            var outside = PeftTargeting.BaseModules(model)
                .Where(m => m.Module is IAdapterHost<LinearAdapter> && ia3.IsFeedForward(m.Path) && !targets.Contains(m.Path))
                .Select(m => m.Path)
                .ToList();
            if (outside.Count > 0)
                throw new LoraException($"feedforward_modules '{pattern}' selects {string.Join(", ", outside.Take(3))}{(outside.Count > 3 ? $" and {outside.Count - 3} more" : string.Empty)}, not among the targets ({ia3.TargetModules}); every feed-forward module must be a target.");
        }

        return base.Inject(model, ia3, adapterName);
    }

    public override string? CannotHost(IAdapterHost host, string path, Ia3Config config) =>
        host is IAdapterHost<LinearAdapter> ? null : $"{path} ({host.GetType().Name}) cannot host IA3 (only linear layers can, as in PEFT).";

    public override nn.Module Attach(IAdapterHost host, string path, Ia3Config config, string adapterName)
    {
        if (host is not LinearLayer layer)
            throw new LoraException($"{path} ({host.GetType().Name}) cannot host IA3.");
        var adapter = new Ia3Adapter(layer.InFeatures, layer.OutFeatures, config.IsFeedForward(path), config.InitIa3Weights, layer.Base.Device);
        return layer.AddAdapter(adapterName, adapter);
    }

    /// <summary>Each adapter's input/output choice must be what the saved config says, or PEFT would rebuild it the
    /// other way round.</summary>
    public override void CheckDescribes(nn.Module model, PeftConfig config, string adapterName)
    {
        var ia3 = WithFamilyDefaults(model, Typed(config));
        foreach (var (path, host) in model.AdaptedLayers())
        {
            if (host.HasAdapter(adapterName) && host.GetAdapter(adapterName) is Ia3Adapter adapter && adapter.IsFeedForward != ia3.IsFeedForward(path))
                throw new LoraException($"adapter '{adapterName}' at {path} scales the layer's {(adapter.IsFeedForward ? "input" : "output")}, but the config's feedforward_modules ({ia3.FeedforwardModules}) say otherwise; save it with a matching config.");
        }
    }

    /// <summary>The saved form: targets as PEFT lists, and <c>feedforward_modules</c> as the (leaf or full-path) list
    /// of the adapted layers whose adapter scales the input.</summary>
    public override Ia3Config ForSaving(nn.Module model, Ia3Config config, IReadOnlyList<string> adaptedPaths)
    {
        var saved = base.ForSaving(model, WithFamilyDefaults(model, config), adaptedPaths);
        if (saved.FeedforwardModules is { IsPeftForm: true })
            return saved;
        // Leaf names when, with PEFT's endswith rule, they pick exactly these targets; else the full paths.
        var feedForward = adaptedPaths.Where(saved.IsFeedForward).ToHashSet(StringComparer.Ordinal);
        var leaves = feedForward.Select(p => p[(p.LastIndexOf('.') + 1)..]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var byLeaf = adaptedPaths.Where(p => leaves.Any(n => p.EndsWith(n, StringComparison.Ordinal))).ToHashSet(StringComparer.Ordinal);
        return saved with
        {
            FeedforwardModules = TargetModules.FromNames(byLeaf.SetEquals(feedForward) ? leaves : feedForward.Order(StringComparer.Ordinal)),
        };
    }

    /// <summary>PEFT fills unset <c>target_modules</c> / <c>feedforward_modules</c> from its per-model tables.</summary>
    private static Ia3Config WithFamilyDefaults(nn.Module model, Ia3Config config)
    {
        if (config.TargetModules is not null && config.FeedforwardModules is not null)
            return config;
        var family = (model as CausalLM)?.Family;
        var targets = config.TargetModules ?? (family?.DefaultTargetModules.GetValueOrDefault(PeftTypeName) is { } t ? TargetModules.FromNames(t)
            : throw new LoraException("IA3: target_modules is not set and the model has no default; name the layers to adapt."));
        var feedForward = config.FeedforwardModules ?? (family?.DefaultIa3FeedForwardModules is { } f ? TargetModules.FromNames(f)
            : throw new LoraException("IA3: feedforward_modules is not set and the model has no default; name the feed-forward layers (or none)."));
        return config with { TargetModules = targets, FeedforwardModules = feedForward };
    }
}
