namespace Lora.Models;

/// <summary>Reads a Hugging Face <c>config.json</c> into the config record of its <c>model_type</c>.</summary>
public static class ModelConfigLoader
{
    public const string FileName = "config.json";

    /// <summary>Supported <c>model_type</c> values.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "mistral", "qwen2", "gpt2"];

    /// <summary>Reads <paramref name="path"/>: a model directory (its <c>config.json</c>) or the file itself.</summary>
    /// <exception cref="LoraException">Missing file, malformed JSON (with line), unsupported <c>model_type</c> or
    /// option, or a missing/ill-typed field (the message names the file and the field).</exception>
    public static ModelConfig Load(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        var json = ConfigJson.Parse(file);
        var modelType = json.RequiredString("model_type");
        return modelType switch
        {
            "llama" or "mistral" => LlamaConfig.Parse(json, modelType),
            "qwen2" => Qwen2Config.Parse(json, modelType),
            "gpt2" => Gpt2Config.Parse(json, modelType),
            _ => throw json.Error("model_type", $"is '{modelType}': not a supported architecture (supported: {string.Join(", ", SupportedModelTypes)})."),
        };
    }
}
