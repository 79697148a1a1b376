using System.Text.Json;
using System.Text.Json.Nodes;
using Lora.Peft;

namespace Lora.Tuners.Bottleneck;

/// <summary>
/// AdapterHub's adapter directory (the <c>adapters</c> library, <c>loading.py</c> <c>AdapterLoader.save</c> and
/// <c>configuration/model_adapters_config.py</c> <c>build_full_config</c>), which a user of <c>adapters</c> loads with
/// <c>model.load_adapter(dir, use_safetensors=True)</c>:
/// <code>
///   adapter_config.json    {"config": {BnConfig fields…}, "hidden_size": C, "model_class": "LlamaForCausalLM",
///                           "model_name": …, "model_type": "llama", "name": NAME, "version": "adapters.1.2.0"}
///                          (indent 2, keys sorted, as json.dump(…, indent=2, sort_keys=True))
///   adapter.safetensors    the model's state-dict entries of the adapter, e.g.
///                          model.layers.{i}.output_adapters.adapters.NAME.adapter_down.0.weight   (d, C)
///                          model.layers.{i}.output_adapters.adapters.NAME.adapter_down.0.bias     (d)
///                          model.layers.{i}.output_adapters.adapters.NAME.adapter_up.weight       (C, d)
///                          model.layers.{i}.output_adapters.adapters.NAME.adapter_up.bias         (C)
///                          (attention_adapters for mh_adapter; GPT-2: transformer.h.{i}.…)
/// </code>
/// The pickled <c>pytorch_adapter.bin</c> AdapterHub writes without <c>use_safetensors</c> is not read.
/// </summary>
public static class AdapterHubFormat
{
    public const string WeightsFileName = "adapter.safetensors";

    /// <summary>AdapterHub's pickled weights (<c>WEIGHTS_NAME</c>): recognised, refused.</summary>
    public const string PickledWeightsFileName = "pytorch_adapter.bin";

    /// <summary>The version stamp written (<c>"adapters." + __version__</c>).</summary>
    public const string Version = "adapters.1.2.0";

    /// <summary>BnConfig fields whose AdapterHub default is all this runtime implements.</summary>
    private static readonly (string Key, JsonNode? Default)[] Fixed =
    [
        ("adapter_residual_before_ln", false), ("cross_adapter", false), ("inv_adapter", null), ("is_parallel", false),
        ("ln_after", false), ("ln_before", false), ("original_ln_after", true), ("phm_layer", false),
        ("residual_before_ln", true), ("stochastic_depth", 0.0), ("use_gating", false),
    ];

    /// <summary>BnConfig fields that carry no behaviour here (PHM settings of a disabled PHM layer, the init seed of
    /// weights that are loaded, the inverse adapter's size without an inverse adapter).</summary>
    private static readonly (string Key, JsonNode? Default)[] Inert =
    [
        ("factorized_phm_W", true), ("factorized_phm_rule", false), ("hypercomplex_nonlinearity", "glorot-uniform"),
        ("init_weights_seed", null), ("inv_adapter_reduction_factor", null), ("learn_phm", true), ("phm_bias", true),
        ("phm_c_init", "normal"), ("phm_dim", 4), ("phm_init_range", 0.0001), ("phm_rank", 1), ("shared_W_phm", false),
        ("shared_phm_rule", true),
    ];

    /// <summary>The config of an AdapterHub directory's <c>adapter_config.json</c>, or null when it is not one.</summary>
    public static BottleneckConfig? Read(PeftConfigFields fields)
    {
        if (fields.Node("config") is not JsonObject || fields.Node("peft_type") is not null)
            return null;
        var version = fields.String("version");
        var modelType = fields.String("model_type");
        fields.Int("hidden_size");
        fields.Ignore("model_class", "model_name", "label2id");
        var name = fields.String("name");
        var config = fields.Object("config")!;
        var architecture = config.String("architecture");
        if (architecture is not null and not "bottleneck")
            throw config.Error("architecture", $"is \"{architecture}\"; only AdapterHub's bottleneck adapters are read here (PEFT reads LoRA, prefix and prompt tuning).");
        foreach (var (key, value) in Fixed)
        {
            if (config.Node(key) is { } given && !JsonNode.DeepEquals(given, value))
                throw config.Error(key, $"= {given.ToJsonString()} is not supported (only {value?.ToJsonString() ?? "null"} is).");
        }

        config.Ignore(Inert.Select(i => i.Key).ToArray());
        var scaling = config.Node("scaling");
        if (scaling is not null && scaling.GetValueKind() != JsonValueKind.Number)
            throw config.Error("scaling", $"= {scaling.ToJsonString()} is not supported (only a constant).");
        var reduction = config.Node("reduction_factor");
        double? factor = reduction switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
            JsonObject o when o.Count == 1 && o["default"] is JsonValue d && d.GetValueKind() == JsonValueKind.Number => d.GetValue<double>(),
            _ => throw config.Error("reduction_factor", $"= {reduction.ToJsonString()} is not supported (a number, or {{\"default\": number}}; per-layer factors are not)."),
        };
        return new BottleneckConfig
        {
            MhAdapter = config.Bool("mh_adapter") ?? throw config.Error("mh_adapter", "is missing."),
            OutputAdapter = config.Bool("output_adapter") ?? throw config.Error("output_adapter", "is missing."),
            ReductionFactor = factor ?? throw config.Error("reduction_factor", "is missing."),
            NonLinearity = config.String("non_linearity") ?? throw config.Error("non_linearity", "is missing."),
            OriginalLnBefore = config.Bool("original_ln_before") ?? false,
            Scaling = scaling?.GetValue<double>() ?? 1.0,
            Dropout = config.Double("dropout") ?? 0,
            InitWeights = config.String("init_weights") ?? BottleneckInit.Bert,
            LeaveOut = config.Ints("leave_out") ?? [],
            Name = name,
            BaseModelNameOrPath = null,
            ModelType = modelType,
            HubVersion = version,
        };
    }

    /// <summary>Writes <c>adapter_config.json</c> into <paramref name="directory"/> atomically.</summary>
    public static void WriteConfig(string directory, BottleneckConfig config, string name, string modelType, int hiddenSize, string? modelClass)
    {
        var bn = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["architecture"] = null,
            ["dropout"] = config.Dropout,
            ["init_weights"] = config.InitWeights,
            ["leave_out"] = new JsonArray(config.LeaveOut.Order().Select(i => (JsonNode?)i).ToArray()),
            ["mh_adapter"] = config.MhAdapter,
            ["non_linearity"] = config.NonLinearity,
            ["original_ln_before"] = config.OriginalLnBefore,
            ["output_adapter"] = config.OutputAdapter,
            ["reduction_factor"] = PeftConfigFile.Number(config.ReductionFactor ?? throw new ArgumentException("the config is not prepared (no reduction factor).", nameof(config))),
            ["scaling"] = config.Scaling,
        };
        foreach (var (key, value) in Fixed.Concat(Inert))
            bn[key] = value?.DeepClone();
        var root = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["config"] = new JsonObject(bn),
            ["hidden_size"] = hiddenSize,
            ["model_class"] = modelClass,
            ["model_name"] = config.BaseModelNameOrPath,
            ["model_type"] = modelType,
            ["name"] = name,
            ["version"] = Version,
        };
        var json = new JsonObject(root).ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 });
        AtomicFile.WriteAllText(Path.Combine(directory, PeftConfigFile.FileName), json + "\n");
    }
}
