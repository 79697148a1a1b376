namespace Lora.Models;

/// <summary>
/// The architecture families this runtime builds, one line each (transformers' auto-class table): config.json's
/// <c>model_type</c> picks the family, which parses the config and builds the model. A new family is a folder under
/// <c>Models/</c> with its config, modules and a <see cref="ModelFamily"/> description, plus a line in <see cref="All"/>.
/// </summary>
public static class ModelFamilies
{
    /// <summary>Every family.</summary>
    public static IReadOnlyList<ModelFamily> All { get; } =
    [
        LlamaFamily.Description,
        Qwen2Family.Description,
        Gpt2Family.Description,
    ];

    /// <summary>Every supported <c>model_type</c>.</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } = All.SelectMany(f => f.ModelTypes).ToList();

    /// <summary>The family reading <c>model_type</c> <paramref name="modelType"/>, or null.</summary>
    public static ModelFamily? Find(string modelType) => All.FirstOrDefault(f => f.ModelTypes.Contains(modelType, StringComparer.Ordinal));
}
