using System.Text.Json;
using System.Text.Json.Nodes;

namespace Lora.Peft;

/// <summary>
/// Reads and writes PEFT's <c>adapter_config.json</c> for every method: the shared fields here, the method's own by
/// the method its <c>peft_type</c> names (<see cref="PeftMethods"/>). Writing follows PEFT's <c>save_pretrained</c>
/// (C3): every field present, keys sorted, indent 2, <c>inference_mode: true</c>. Reading tolerates any subset of
/// fields as long as <c>peft_type</c> is present, warns about keys it does not know, and refuses options whose
/// behaviour it does not implement (rather than silently ignoring them).
/// </summary>
public static class PeftConfigFile
{
    public const string FileName = "adapter_config.json";
    public const string PeftVersion = "0.21.0";

    /// <summary>Reads <c>adapter_config.json</c> in <paramref name="directory"/> (or the file itself) into the config
    /// type of its <c>peft_type</c>.</summary>
    /// <param name="directory">An adapter directory, or the path of its adapter_config.json.</param>
    /// <param name="warnings">Receives one line per ignored unknown key.</param>
    /// <exception cref="LoraException">Missing file, bad JSON (with line), unknown <c>peft_type</c>, a field of the wrong
    /// type or an unsupported value (the message names the file and the field).</exception>
    public static PeftConfig Read(string directory, Action<string>? warnings = null)
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

    /// <summary><see cref="Read(string, Action{string}?)"/>, requiring a config of type <typeparamref name="TConfig"/>.</summary>
    public static TConfig Read<TConfig>(string directory, Action<string>? warnings = null)
        where TConfig : PeftConfig
    {
        var config = Read(directory, warnings);
        return config as TConfig ?? throw new LoraException($"{directory}: the adapter is {config.PeftType}, not the {typeof(TConfig).Name} this needs.");
    }

    internal static PeftConfig Parse(JsonObject root, string path, Action<string>? warnings)
    {
        var fields = new PeftConfigFields(root, path);
        var peftType = fields.String("peft_type");
        if (peftType is null)
        {
            // Not PEFT's: another library's layout a method reads (AdapterHub's bottleneck adapters).
            foreach (var candidate in PeftMethods.All)
            {
                if (candidate.ReadForeignConfig(fields) is { } foreign)
                {
                    foreach (var key in fields.Unread)
                        warnings?.Invoke($"{path}: ignoring unknown field \"{key}\".");
                    return foreign;
                }
            }

            throw new LoraException($"{path}: field \"peft_type\" is missing; not a PEFT adapter config (nor an AdapterHub bottleneck adapter's).");
        }

        var method = PeftMethods.Find(peftType)
            ?? throw new LoraException($"{path}: field \"peft_type\" is \"{peftType}\"; this runtime reads {string.Join(", ", PeftMethods.All.Select(m => m.PeftType))} adapters.");

        var config = method.ReadConfig(fields) with
        {
            TaskType = fields.String("task_type") ?? "CAUSAL_LM",
            BaseModelNameOrPath = fields.String("base_model_name_or_path"),
            Revision = fields.String("revision"),
        };
        if (config is TunerConfig tuner)
        {
            config = tuner with
            {
                TargetModules = fields.Targets("target_modules"),
                ExcludeModules = fields.Targets("exclude_modules"),
                ModulesToSave = fields.Strings("modules_to_save"),
                FanInFanOut = fields.Bool("fan_in_fan_out") ?? false,
            };
        }

        fields.Ignore("auto_mapping", "inference_mode", "peft_version");
        foreach (var key in fields.Unread)
            warnings?.Invoke($"{path}: ignoring unknown field \"{key}\".");
        return config;
    }

    /// <summary>Writes <c>adapter_config.json</c> into <paramref name="directory"/> atomically.</summary>
    public static void Write(string directory, PeftConfig config)
    {
        var fields = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["base_model_name_or_path"] = config.BaseModelNameOrPath,
            ["inference_mode"] = true,
            ["peft_type"] = config.PeftType,
            ["peft_version"] = PeftVersion,
            ["revision"] = config.Revision,
            ["task_type"] = config.TaskType,
        };
        if (config is TunerConfig tuner)
        {
            fields["target_modules"] = TargetsNode(tuner.TargetModules);
            fields["exclude_modules"] = TargetsNode(tuner.ExcludeModules);
            fields["modules_to_save"] = tuner.ModulesToSave is { } m ? ListNode(m) : null;
            fields["fan_in_fan_out"] = tuner.FanInFanOut;
        }

        PeftMethods.For(config).WriteConfig(config, fields);
        var json = new JsonObject(fields).ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 });
        AtomicFile.WriteAllText(Path.Combine(directory, FileName), json + "\n");
    }

    /// <summary>A target-module field as PEFT writes it: a sorted list, a regex string, or <c>all-linear</c>.</summary>
    public static JsonNode? TargetsNode(TargetModules? targets) => targets switch
    {
        null => null,
        { LeafOrPathPattern: { } p } => throw new LoraException($"target regex '{p}' has no PEFT form; save through PeftAdapter.Save, which writes the layers it resolved to."),
        { IsAllLinear: true } => TargetModules.AllLinearShorthand,
        { Pattern: { } p } => p,
        { Names: { } names } => ListNode(names.Order(StringComparer.Ordinal)),
        _ => null,
    };

    /// <summary>A JSON list of strings.</summary>
    public static JsonArray ListNode(IEnumerable<string> items) => new(items.Select(s => (JsonNode?)s).ToArray());

    /// <summary>A number as PEFT's JSON has it: integral values without a fraction.</summary>
    public static JsonNode Number(double value) =>
        value == Math.Floor(value) && Math.Abs(value) < 1e15 ? JsonValue.Create((long)value) : JsonValue.Create(value);
}
