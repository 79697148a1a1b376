namespace Lora.Adapters;

/// <summary>
/// A LoRA adapter's configuration with PEFT's field meanings (<c>adapter_config.json</c>, <c>peft_type: "LORA"</c>).
/// See <see cref="PeftConfigFile"/> for reading and writing it.
/// </summary>
public sealed record LoraConfig
{
    /// <summary>Rank r of the update <c>ΔW = B·A</c>, A <c>[r, in]</c>, B <c>[out, r]</c>.</summary>
    public int R { get; init; } = 8;

    /// <summary>α: the update is scaled by α/r (or α/√r with <see cref="UseRsLora"/>).</summary>
    public double LoraAlpha { get; init; } = 8;

    /// <summary>Dropout on the adapter's input (training only).</summary>
    public double LoraDropout { get; init; }

    /// <summary>Which modules get adapters (null: none chosen yet).</summary>
    public TargetModules? TargetModules { get; init; }

    /// <summary>Modules never adapted (same list/regex semantics as the targets).</summary>
    public TargetModules? ExcludeModules { get; init; }

    public LoraBias Bias { get; init; } = LoraBias.None;

    /// <summary>True for layers storing their weight as <c>[in, out]</c> (GPT-2 Conv1D).</summary>
    public bool FanInFanOut { get; init; }

    /// <summary>rsLoRA scaling α/√r.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>DoRA: a trainable magnitude vector per output row.</summary>
    public bool UseDora { get; init; }

    /// <summary>PEFT's <c>init_lora_weights</c>: <c>true</c> (Kaiming-uniform A, zero B), <c>"gaussian"</c>, or
    /// <c>false</c> (both random; for tests). Kept as the JSON text: <c>true</c>, <c>false</c> or a quoted name.</summary>
    public string InitLoraWeights { get; init; } = "true";

    /// <summary>Modules trained in full and saved with the adapter (e.g. <c>lm_head</c>).</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    public LayerSelection? LayersToTransform { get; init; }

    /// <summary>Per-module rank overrides: a key matches a module path by <c>(.*\.)?(key)$</c>, first key wins.</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>Per-module α overrides, matched like <see cref="RankPattern"/>.</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>A trainable bias on lora_B.</summary>
    public bool LoraBiasTerm { get; init; }

    public string? BaseModelNameOrPath { get; init; }

    public string? Revision { get; init; }

    public string TaskType { get; init; } = "CAUSAL_LM";

    /// <summary>The r and α in force for the module at <paramref name="path"/> (after rank/alpha patterns).</summary>
    public (int R, double Alpha) RankAndAlphaFor(string path)
    {
        var r = PatternValue(RankPattern, path) is { } pr ? pr : R;
        var alpha = PatternValue(AlphaPattern, path) is { } pa ? pa : LoraAlpha;
        return (r, alpha);
    }

    /// <summary>The scale applied to <c>B·A·x</c>: α/r, or α/√r with rsLoRA.</summary>
    public double ScalingFor(string path)
    {
        var (r, alpha) = RankAndAlphaFor(path);
        return UseRsLora ? alpha / Math.Sqrt(r) : alpha / r;
    }

    /// <summary>Is the module at <paramref name="path"/> a target (before checking that it is adaptable)?</summary>
    public bool IsTarget(string path)
    {
        if (ExcludeModules?.Matches(path) == true)
            return false;
        if (ModulesToSave?.Any(m => System.Text.RegularExpressions.Regex.IsMatch(path, $@"(^|.*\.){m}($|\..*)")) == true)
            return false;
        if (TargetModules is null || !TargetModules.Matches(path))
            return false;
        // PEFT applies layers_to_transform only to the list form of target_modules.
        return TargetModules.Names is null || LayersToTransform is null || LayersToTransform.Includes(path);
    }

    private static T? PatternValue<T>(IReadOnlyDictionary<string, T> patterns, string path)
        where T : struct
    {
        foreach (var (key, value) in patterns)
        {
            if (System.Text.RegularExpressions.Regex.IsMatch(path, $@"^(.*\.)?({key})$"))
                return value;
        }

        return null;
    }
}
