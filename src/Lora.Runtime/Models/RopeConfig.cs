namespace Lora.Models;

/// <summary>
/// Rotary position embedding parameters: transformers v5 <c>rope_parameters</c>
/// (<c>{"rope_theta": θ, "rope_type": "default" | "linear" | "llama3", ...}</c>) or the v4 form, a top-level
/// <c>rope_theta</c> plus <c>rope_scaling</c> (<c>{"rope_type"|"type": ..., "factor": ...}</c>).
/// </summary>
public sealed record RopeConfig
{
    /// <summary>Supported <c>rope_type</c> values.</summary>
    public static readonly IReadOnlyList<string> SupportedTypes = ["default", "linear", "llama3"];

    /// <summary><c>rope_theta</c>: base θ of <c>inv_freq[i] = θ^(-2i/head_dim)</c>.</summary>
    public double Theta { get; init; } = 10000.0;

    /// <summary><c>rope_type</c>: default, linear (positions divided by <see cref="Factor"/>) or llama3
    /// (Llama 3.1 wavelength-dependent scaling).</summary>
    public string Type { get; init; } = "default";

    /// <summary><c>factor</c> (linear, llama3).</summary>
    public double Factor { get; init; } = 1.0;

    /// <summary><c>low_freq_factor</c> (llama3).</summary>
    public double LowFreqFactor { get; init; } = 1.0;

    /// <summary><c>high_freq_factor</c> (llama3).</summary>
    public double HighFreqFactor { get; init; } = 4.0;

    /// <summary><c>original_max_position_embeddings</c> (llama3).</summary>
    public int OriginalMaxPositions { get; init; } = 8192;

    internal static RopeConfig Parse(ConfigJson json, double defaultTheta)
    {
        var parameters = json.OptionalObject("rope_parameters");
        var source = parameters ?? json.OptionalObject("rope_scaling");
        var theta = parameters?.OptionalDouble("rope_theta") ?? json.OptionalDouble("rope_theta") ?? defaultTheta;
        if (theta <= 0)
            throw (parameters ?? json).Error("rope_theta", $"must be positive, got {ConfigJson.Format(theta)}.");
        if (source is null)
            return new RopeConfig { Theta = theta };

        var typeField = source.Has("rope_type") ? "rope_type" : "type";
        var type = source.OptionalString(typeField) ?? "default";
        if (!SupportedTypes.Contains(type))
            throw source.Error(typeField, $"is '{type}': this rotary embedding is not supported (supported: {string.Join(", ", SupportedTypes)}).");
        if (source.OptionalDouble("partial_rotary_factor") is { } partial && partial != 1.0)
            throw source.Error("partial_rotary_factor", $"is {ConfigJson.Format(partial)}: only 1.0 (rotary over the whole head) is supported.");

        return type switch
        {
            "default" => new RopeConfig { Theta = theta },
            "linear" => new RopeConfig { Theta = theta, Type = type, Factor = Positive(source, "factor") },
            _ => new RopeConfig
            {
                Theta = theta,
                Type = type,
                Factor = Positive(source, "factor"),
                LowFreqFactor = Positive(source, "low_freq_factor"),
                HighFreqFactor = Positive(source, "high_freq_factor"),
                OriginalMaxPositions = source.RequiredPositive("original_max_position_embeddings"),
            },
        };
    }

    private static double Positive(ConfigJson json, string name)
    {
        var value = json.RequiredDouble(name);
        return value > 0 ? value : throw json.Error(name, $"must be positive, got {ConfigJson.Format(value)}.");
    }
}
