using System.Text.Json;
using System.Text.Json.Nodes;
using Lora.Modules;
using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Tuners.LoRA;

/// <summary>
/// LoRA (PEFT <c>peft_type: "LORA"</c>, <c>tuners/lora/</c>), with rsLoRA and DoRA: a <see cref="LoraAdapter"/> on
/// each targeted linear layer, a <see cref="LoraEmbeddingAdapter"/> on each targeted embedding table; the biases
/// <c>bias</c> asks for train and save with it.
/// </summary>
public sealed class LoraMethod : LayerTunerMethod<LoraConfig>
{
    public const string PeftTypeName = "LORA";

    /// <summary>PEFT LoRA keys whose default (null / false / {} / []) we match; any other value is refused.</summary>
    private static readonly string[] MustBeDefault =
    [
        "alora_invocation_tokens", "arrow_config", "corda_config", "eva_config", "kasa_config", "layer_replication",
        "loftq_config", "lora_ga_config", "megatron_config", "monteclora_config", "target_parameters",
        "trainable_token_indices", "use_bdlora", "use_qalora", "velora_config", "ensure_weight_tying",
    ];

    private LoraMethod()
    {
    }

    public static LoraMethod Instance { get; } = new();

    public override string PeftType => PeftTypeName;

    public override string DisplayName => "LoRA";

    public override PeftConfig ReadConfig(PeftConfigFields fields)
    {
        fields.RequireDefault(MustBeDefault);
        fields.Ignore("megatron_core", "qalora_group_size");
        var layers = fields.Ints("layers_to_transform");
        var config = new LoraConfig
        {
            R = fields.Int("r") ?? 8,
            LoraAlpha = fields.Double("lora_alpha") ?? 8,
            LoraDropout = fields.Double("lora_dropout") ?? 0,
            Bias = (fields.String("bias") ?? "none") switch
            {
                "none" => LoraBias.None,
                "all" => LoraBias.All,
                "lora_only" => LoraBias.LoraOnly,
                var other => throw fields.Error("bias", $"is \"{other}\"; expected none, all or lora_only."),
            },
            UseRsLora = fields.Bool("use_rslora") ?? false,
            UseDora = fields.Bool("use_dora") ?? false,
            InitLoraWeights = fields.Node("init_lora_weights") is { } init ? InitText(init, fields) : "true",
            LayersToTransform = layers is null || layers.Count == 0 ? null : new LayerSelection(layers, fields.Strings("layers_pattern") ?? []),
            RankPattern = fields.Map("rank_pattern", n => n.GetValue<int>()),
            AlphaPattern = fields.Map("alpha_pattern", n => n.GetValue<double>()),
            LoraBiasTerm = fields.Bool("lora_bias") ?? false,
        };
        if (layers is null)
            fields.Strings("layers_pattern");
        if (config.R <= 0)
            throw fields.Error("r", $"must be > 0 (got {config.R}).");
        return config;
    }

    public override void WriteConfig(PeftConfig config, IDictionary<string, JsonNode?> fields)
    {
        var lora = Typed(config);
        fields["alpha_pattern"] = new JsonObject(lora.AlphaPattern.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)PeftConfigFile.Number(p.Value))));
        fields["bias"] = lora.Bias switch { LoraBias.All => "all", LoraBias.LoraOnly => "lora_only", _ => "none" };
        fields["init_lora_weights"] = JsonNode.Parse(lora.InitLoraWeights);
        fields["layers_pattern"] = lora.LayersToTransform is { Patterns.Count: > 0 } l ? PeftConfigFile.ListNode(l.Patterns) : null;
        fields["layers_to_transform"] = lora.LayersToTransform is { } layers ? new JsonArray(layers.Layers.Select(i => (JsonNode?)i).ToArray()) : null;
        fields["lora_alpha"] = PeftConfigFile.Number(lora.LoraAlpha);
        fields["lora_bias"] = lora.LoraBiasTerm;
        fields["lora_dropout"] = lora.LoraDropout;
        fields["r"] = lora.R;
        fields["rank_pattern"] = new JsonObject(lora.RankPattern.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value)));
        fields["use_dora"] = lora.UseDora;
        fields["use_rslora"] = lora.UseRsLora;
    }

    public override string? CannotHost(IAdapterHost host, string path, LoraConfig config) => host switch
    {
        IAdapterHost<LinearAdapter> => null,
        IAdapterHost<EmbeddingAdapter> when config.UseDora => $"DoRA on an embedding ({path}) is not supported; target linear layers only or turn DoRA off.",
        IAdapterHost<EmbeddingAdapter> => null,
        _ => $"{path} ({host.GetType().Name}) cannot host LoRA.",
    };

    public override nn.Module Attach(IAdapterHost host, string path, LoraConfig config, string adapterName)
    {
        var init = LoraInits.Parse(config.InitLoraWeights);
        return host switch
        {
            LinearLayer linear => Attach(linear, path, config, adapterName, init),
            EmbeddingLayer table => Attach(table, path, config, adapterName, init),
            _ => throw new LoraException($"{path} ({host.GetType().Name}) cannot host LoRA."),
        };
    }

    /// <summary>Adds one adapter to <paramref name="layer"/> (at <paramref name="path"/>, for rank/alpha patterns):
    /// fp32 factors on the layer's device, DoRA magnitude initialised to ‖W + ΔW‖ when enabled.</summary>
    public static LoraAdapter Attach(LinearLayer layer, string path, LoraConfig config, string adapterName, LoraInit init)
    {
        var (r, alpha) = config.RankAndAlphaFor(path);
        var adapter = new LoraAdapter(layer.InFeatures, layer.OutFeatures, r, alpha, config.UseRsLora, config.LoraDropout,
            config.LoraBiasTerm, init, layer.Base.Device, ScalarType.Float32);
        layer.AddAdapter(adapterName, adapter);
        if (config.UseDora)
            adapter.EnableDora(layer.Base);
        return adapter;
    }

    /// <summary>Adds one LoRA embedding adapter to <paramref name="layer"/> (A = 0, B ~ N(0, 1), as PEFT).</summary>
    public static LoraEmbeddingAdapter Attach(EmbeddingLayer layer, string path, LoraConfig config, string adapterName, LoraInit init)
    {
        var (r, alpha) = config.RankAndAlphaFor(path);
        var adapter = new LoraEmbeddingAdapter(layer.NumEmbeddings, layer.EmbeddingDim, r, alpha, config.UseRsLora, init, layer.Weight.device);
        return (LoraEmbeddingAdapter)layer.AddAdapter(adapterName, adapter);
    }

    /// <summary>modules_to_save, plus the biases <c>bias</c> trains: <c>lora_only</c>, the adapted layers' biases, saved as
    /// <c>base_model.model.{path}.base_layer.bias</c> (PEFT's in-memory name for a wrapped layer's bias); <c>all</c>,
    /// those and every other bias, as <c>base_model.model.{name}</c>.</summary>
    public override IEnumerable<(string PeftKey, Parameter Parameter)> ExtraTrainables(nn.Module model, PeftConfig config, string adapterName)
    {
        var lora = Typed(config);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in base.ExtraTrainables(model, config, adapterName))
        {
            if (seen.Add(entry.PeftKey))
                yield return entry;
        }

        if (lora.Bias == LoraBias.None)
            yield break;
        var adapted = model.AdaptedLayers().Where(l => l.Layer.HasAdapter(adapterName)).Select(l => l.Path).ToHashSet(StringComparer.Ordinal);
        var adapterParameters = model.AdapterParameters().Select(p => p.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (!name.EndsWith(".bias", StringComparison.Ordinal) || adapterParameters.Contains(parameter))
                continue;
            var owner = name[..name.LastIndexOf('.')];
            var key = adapted.Contains(owner) ? AdapterKeys.PeftPrefix + owner + ".base_layer.bias"
                : lora.Bias == LoraBias.All ? AdapterKeys.PeftPrefix + name
                : null;
            if (key is not null && seen.Add(key))
                yield return (key, parameter);
        }
    }

    /// <summary>A saved config must reproduce each layer's rank and α, or PEFT would rebuild different shapes.</summary>
    public override void CheckDescribes(nn.Module model, PeftConfig config, string adapterName)
    {
        var lora = Typed(config);
        foreach (var (path, host) in model.AdaptedLayers())
        {
            if (!host.HasAdapter(adapterName))
                continue;
            (int Rank, double Alpha)? actual = host.GetAdapter(adapterName) switch
            {
                LoraAdapter a => (a.Rank, a.Alpha),
                LoraEmbeddingAdapter e => (e.Rank, e.Alpha),
                _ => null,
            };
            if (actual is { } a2 && lora.RankAndAlphaFor(path) is var expected && (expected.R != a2.Rank || Math.Abs(expected.Alpha - a2.Alpha) > 1e-9))
                throw new LoraException($"the config says r={expected.R}, lora_alpha={expected.Alpha} for {path}, but adapter '{adapterName}' there has r={a2.Rank}, alpha={a2.Alpha}; save it with a matching config (rank_pattern/alpha_pattern for per-layer values).");
        }
    }

    public override IEnumerable<string> Differences(PeftConfig file, PeftConfig plan)
    {
        var (f, p) = (Typed(file), Typed(plan));
        if (f.R != p.R)
            yield return $"r = {f.R} (plan: {p.R})";
        if (f.LoraAlpha != p.LoraAlpha)
            yield return $"lora_alpha = {f.LoraAlpha} (plan: {p.LoraAlpha})";
        if (f.UseRsLora != p.UseRsLora)
            yield return $"use_rslora = {f.UseRsLora} (plan: {p.UseRsLora})";
        if (f.UseDora != p.UseDora)
            yield return $"use_dora = {f.UseDora} (plan: {p.UseDora})";
        if (f.LoraBiasTerm != p.LoraBiasTerm)
            yield return $"lora_bias = {f.LoraBiasTerm} (plan: {p.LoraBiasTerm})";
        if (f.RankPattern.Count > 0 || f.AlphaPattern.Count > 0)
            yield return "rank_pattern/alpha_pattern are set (a plan has one r and alpha)";
    }

    /// <summary>Adapters about to be filled from a file are built with the default init (its values are overwritten).</summary>
    public override PeftConfig ForLoading(PeftConfig config) => Typed(config) with { InitLoraWeights = "true" };

    private static string InitText(JsonNode node, PeftConfigFields fields) => node.GetValueKind() switch
    {
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.String when node.GetValue<string>() == "gaussian" => "\"gaussian\"",
        _ => throw fields.Error("init_lora_weights", $"= {node.ToJsonString()} is not supported (use true, false or \"gaussian\")."),
    };
}
