using Lora.Peft;

namespace Lora.Tuners.LoRA;

/// <summary>
/// A LoRA adapter's configuration with PEFT's field meanings (<c>adapter_config.json</c>, <c>peft_type: "LORA"</c>).
/// The targets, exclusions and modules to save are the shared <see cref="TunerConfig"/> fields;
/// <see cref="LoraMethod"/> reads and writes the rest.
/// </summary>
public sealed record LoraConfig : TunerConfig
{
    public override string PeftType => LoraMethod.PeftTypeName;

    /// <summary>Rank r of the update <c>ΔW = B·A</c>, A <c>[r, in]</c>, B <c>[out, r]</c>.</summary>
    public int R { get; init; } = 8;

    /// <summary>α: the update is scaled by α/r (or α/√r with <see cref="UseRsLora"/>).</summary>
    public double LoraAlpha { get; init; } = 8;

    /// <summary>Dropout on the adapter's input (training only).</summary>
    public double LoraDropout { get; init; }

    public LoraBias Bias { get; init; } = LoraBias.None;

    /// <summary>rsLoRA scaling α/√r.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>DoRA: a trainable magnitude vector per output row.</summary>
    public bool UseDora { get; init; }

    /// <summary>PEFT's <c>init_lora_weights</c>: <c>true</c> (Kaiming-uniform A, zero B), <c>"gaussian"</c>, or
    /// <c>false</c> (both random; for tests). Kept as the JSON text: <c>true</c>, <c>false</c> or a quoted name.</summary>
    public string InitLoraWeights { get; init; } = "true";

    /// <summary><c>layers_to_transform</c> / <c>layers_pattern</c>: only modules in these layer indices are adapted.</summary>
    public LayerSelection? LayersToTransform { get; init; }

    /// <summary>Per-module rank overrides: a key matches a module path by <c>(.*\.)?(key)$</c>, first key wins.</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>Per-module α overrides, matched like <see cref="RankPattern"/>.</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>A trainable bias on lora_B.</summary>
    public bool LoraBiasTerm { get; init; }

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

    /// <summary>PEFT applies <c>layers_to_transform</c> to every form of <c>target_modules</c> but a regex string
    /// (<c>check_target_module_exists</c>: <c>all-linear</c> is a list of names by then); this product's leaf-or-path
    /// regex is resolved per layer, so it applies there too.</summary>
    protected override bool IncludesLayer(string path) =>
        TargetModules?.Pattern is not null || LayersToTransform is null || LayersToTransform.Includes(path);

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
