namespace Lora.Models;

/// <summary>Reads a Hugging Face <c>config.json</c> into the config record of its <c>model_type</c>'s family.</summary>
public static class ModelConfigLoader
{
    public const string FileName = "config.json";

    /// <summary>Supported <c>model_type</c> values.</summary>
    public static IReadOnlyList<string> SupportedModelTypes => ModelFamilies.SupportedModelTypes;

    /// <summary>Reads <paramref name="path"/>: a model directory (its <c>config.json</c>) or the file itself.</summary>
    /// <exception cref="LoraException">Missing file, malformed JSON (with line), unsupported <c>model_type</c> or
    /// option, or a missing/ill-typed field (the message names the file and the field).</exception>
    public static ModelConfig Load(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        var json = ConfigJson.Parse(file);
        var modelType = json.RequiredString("model_type");
        var family = ModelFamilies.Find(modelType)
            ?? throw json.Error("model_type", $"is '{modelType}': not a supported architecture (supported: {string.Join(", ", SupportedModelTypes)}).");
        return family.ParseConfig(json, modelType);
    }
}
