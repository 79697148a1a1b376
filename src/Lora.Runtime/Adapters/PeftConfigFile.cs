using System.Text.Json;
using System.Text.Json.Nodes;

namespace Lora.Adapters;

/// <summary>
/// Reads and writes PEFT's <c>adapter_config.json</c> for LoRA. Writing follows PEFT's <c>save_pretrained</c>: every
/// core field present, keys sorted, indent 2, <c>inference_mode: true</c>. Reading tolerates any subset of fields as
/// long as <c>peft_type</c> is present, warns about keys it does not know, and refuses options whose behaviour it
/// does not implement (rather than silently ignoring them).
/// </summary>
public static class PeftConfigFile
{
    public const string FileName = "adapter_config.json";
    public const string PeftVersion = "0.21.0";

    /// <summary>PEFT keys whose default (null / false / {} / []) we match; any other value is refused.</summary>
    private static readonly HashSet<string> MustBeDefault = new(StringComparer.Ordinal)
    {
        "alora_invocation_tokens", "arrow_config", "corda_config", "eva_config", "kasa_config", "layer_replication",
        "loftq_config", "lora_ga_config", "megatron_config", "monteclora_config", "target_parameters",
        "trainable_token_indices", "use_bdlora", "use_qalora", "velora_config", "ensure_weight_tying",
    };

    /// <summary>PEFT keys that carry no behaviour for us (bookkeeping, or options of disabled features).</summary>
    private static readonly HashSet<string> Ignored = new(StringComparer.Ordinal)
    {
        "auto_mapping", "inference_mode", "megatron_core", "qalora_group_size", "peft_version",
    };

    private static readonly HashSet<string> Understood = new(StringComparer.Ordinal)
    {
        "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "exclude_modules", "bias",
        "fan_in_fan_out", "use_rslora", "use_dora", "init_lora_weights", "modules_to_save", "layers_to_transform",
        "layers_pattern", "rank_pattern", "alpha_pattern", "lora_bias", "base_model_name_or_path", "revision",
    };

    /// <summary>Reads <c>adapter_config.json</c> in <paramref name="directory"/> (or the file itself).</summary>
    /// <param name="directory">An adapter directory, or the path of its adapter_config.json.</param>
    /// <param name="warnings">Receives one line per ignored unknown key.</param>
    public static LoraConfig Read(string directory, Action<string>? warnings = null)
    {
        var path = Directory.Exists(directory) ? Path.Combine(directory, FileName) : directory;
        if (!File.Exists(path))
            throw new LoraException($"{path}: file not found (a PEFT adapter directory holds adapter_config.json and adapter_model.safetensors).");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new LoraException($"{path}: expected a JSON object.");
        }
        catch (JsonException e)
        {
            throw new LoraException($"{path}:{e.LineNumber + 1}: not valid JSON ({e.Message})", e);
        }

        return Parse(root, path, warnings);
    }

    internal static LoraConfig Parse(JsonObject root, string path, Action<string>? warnings)
    {
        string Field(string name) => $"{path}: field \"{name}\"";
        var peftType = root["peft_type"]?.GetValueKind() == JsonValueKind.String ? root["peft_type"]!.GetValue<string>() : null;
        if (peftType is null)
            throw new LoraException($"{Field("peft_type")} is missing; not a PEFT adapter config.");
        if (peftType != "LORA")
            throw new LoraException($"{Field("peft_type")} is \"{peftType}\"; this loader reads LORA adapters.");

        foreach (var (key, value) in root)
        {
            if (Understood.Contains(key) || Ignored.Contains(key))
                continue;
            if (MustBeDefault.Contains(key))
            {
                if (!IsDefault(value))
                    throw new LoraException($"{Field(key)} = {value!.ToJsonString()} is not supported (only its default is).");
                continue;
            }

            warnings?.Invoke($"{path}: ignoring unknown field \"{key}\".");
        }

        try
        {
            var config = new LoraConfig
            {
                R = Int(root, "r") ?? 8,
                LoraAlpha = Double(root, "lora_alpha") ?? 8,
                LoraDropout = Double(root, "lora_dropout") ?? 0,
                TargetModules = Targets(root["target_modules"]),
                ExcludeModules = Targets(root["exclude_modules"]),
                Bias = (Str(root, "bias") ?? "none") switch
                {
                    "none" => LoraBias.None,
                    "all" => LoraBias.All,
                    "lora_only" => LoraBias.LoraOnly,
                    var other => throw new LoraException($"{Field("bias")} is \"{other}\"; expected none, all or lora_only."),
                },
                FanInFanOut = Bool(root, "fan_in_fan_out") ?? false,
                UseRsLora = Bool(root, "use_rslora") ?? false,
                UseDora = Bool(root, "use_dora") ?? false,
                InitLoraWeights = root["init_lora_weights"] is { } init ? InitText(init, Field("init_lora_weights")) : "true",
                ModulesToSave = Strings(root["modules_to_save"]),
                LayersToTransform = Layers(root),
                RankPattern = Map(root["rank_pattern"], n => n.GetValue<int>()),
                AlphaPattern = Map(root["alpha_pattern"], n => n.GetValue<double>()),
                LoraBiasTerm = Bool(root, "lora_bias") ?? false,
                BaseModelNameOrPath = Str(root, "base_model_name_or_path"),
                Revision = Str(root, "revision"),
                TaskType = Str(root, "task_type") ?? "CAUSAL_LM",
            };
            if (config.R <= 0)
                throw new LoraException($"{Field("r")} must be > 0 (got {config.R}).");
            return config;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new LoraException($"{path}: a field has the wrong type ({e.Message}).", e);
        }
    }

    /// <summary>Writes <c>adapter_config.json</c> into <paramref name="directory"/> atomically.</summary>
    public static void Write(string directory, LoraConfig config)
    {
        var fields = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["alpha_pattern"] = new JsonObject(config.AlphaPattern.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)Number(p.Value)))),
            ["base_model_name_or_path"] = config.BaseModelNameOrPath,
            ["bias"] = config.Bias switch { LoraBias.All => "all", LoraBias.LoraOnly => "lora_only", _ => "none" },
            ["exclude_modules"] = TargetsNode(config.ExcludeModules),
            ["fan_in_fan_out"] = config.FanInFanOut,
            ["inference_mode"] = true,
            ["init_lora_weights"] = JsonNode.Parse(config.InitLoraWeights),
            ["layers_pattern"] = config.LayersToTransform is { Patterns.Count: > 0 } l ? ListNode(l.Patterns) : null,
            ["layers_to_transform"] = config.LayersToTransform is { } layers ? new JsonArray(layers.Layers.Select(i => (JsonNode?)i).ToArray()) : null,
            ["lora_alpha"] = Number(config.LoraAlpha),
            ["lora_bias"] = config.LoraBiasTerm,
            ["lora_dropout"] = config.LoraDropout,
            ["modules_to_save"] = config.ModulesToSave is { } m ? ListNode(m) : null,
            ["peft_type"] = "LORA",
            ["peft_version"] = PeftVersion,
            ["r"] = config.R,
            ["rank_pattern"] = new JsonObject(config.RankPattern.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
            ["revision"] = config.Revision,
            ["target_modules"] = TargetsNode(config.TargetModules),
            ["task_type"] = config.TaskType,
            ["use_dora"] = config.UseDora,
            ["use_rslora"] = config.UseRsLora,
        };
        var json = new JsonObject(fields).ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 });
        AtomicFile.WriteAllText(Path.Combine(directory, FileName), json + "\n");
    }

    private static bool IsDefault(JsonNode? value) => value switch
    {
        null => true,
        JsonObject o => o.Count == 0,
        JsonArray a => a.Count == 0,
        JsonValue v when v.GetValueKind() == JsonValueKind.False => true,
        _ => false,
    };

    private static JsonNode Number(double value) =>
        value == Math.Floor(value) && Math.Abs(value) < 1e15 ? JsonValue.Create((long)value) : JsonValue.Create(value);

    private static JsonNode? TargetsNode(TargetModules? targets) => targets switch
    {
        null => null,
        { LeafOrPathPattern: { } p } => throw new LoraException($"target regex '{p}' has no PEFT form; save through PeftAdapter.ForSaving, which writes the layers it resolved to."),
        { IsAllLinear: true } => TargetModules.AllLinearShorthand,
        { Pattern: { } p } => p,
        { Names: { } names } => ListNode(names.Order(StringComparer.Ordinal)),
        _ => null,
    };

    private static JsonArray ListNode(IEnumerable<string> items) => new(items.Select(s => (JsonNode?)s).ToArray());

    private static string InitText(JsonNode node, string field) => node.GetValueKind() switch
    {
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.String when node.GetValue<string>() == "gaussian" => "\"gaussian\"",
        _ => throw new LoraException($"{field} = {node.ToJsonString()} is not supported (use true, false or \"gaussian\")."),
    };

    private static TargetModules? Targets(JsonNode? node) => node switch
    {
        null => null,
        JsonArray a => TargetModules.FromNames(a.Select(n => n!.GetValue<string>())),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => TargetModules.FromPattern(v.GetValue<string>()),
        _ => throw new FormatException($"target/exclude modules must be a list or a string, got {node.ToJsonString()}"),
    };

    private static IReadOnlyList<string>? Strings(JsonNode? node) => node switch
    {
        null => null,
        JsonArray a => a.Select(n => n!.GetValue<string>()).ToList(),
        JsonValue v => [v.GetValue<string>()],
        _ => null,
    };

    private static LayerSelection? Layers(JsonObject root)
    {
        var layers = root["layers_to_transform"] switch
        {
            null => null,
            JsonArray a => a.Select(n => n!.GetValue<int>()).ToList(),
            JsonValue v => [v.GetValue<int>()],
            _ => null,
        };
        return layers is null || layers.Count == 0 ? null : new LayerSelection(layers, Strings(root["layers_pattern"]) ?? []);
    }

    private static Dictionary<string, T> Map<T>(JsonNode? node, Func<JsonNode, T> read) =>
        node is JsonObject o ? o.ToDictionary(p => p.Key, p => read(p.Value!), StringComparer.Ordinal) : new Dictionary<string, T>();

    private static int? Int(JsonObject root, string key) => root[key] is { } n && n.GetValueKind() != JsonValueKind.Null ? n.GetValue<int>() : null;

    private static double? Double(JsonObject root, string key) => root[key] is { } n && n.GetValueKind() != JsonValueKind.Null ? n.GetValue<double>() : null;

    private static bool? Bool(JsonObject root, string key) => root[key] is { } n && n.GetValueKind() != JsonValueKind.Null ? n.GetValue<bool>() : null;

    private static string? Str(JsonObject root, string key) => root[key] is { } n && n.GetValueKind() != JsonValueKind.Null ? n.GetValue<string>() : null;
}
