using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Everything the runtime knows about one architecture family, in one place (transformers'
/// <c>models/auto/configuration_auto.py</c> tables, plus PEFT's per-model defaults from <c>utils/constants.py</c>):
/// the <c>model_type</c>s it reads, how to parse their <c>config.json</c> and build the model, and where the parts
/// that training and PEFT need sit in its module tree. Each family lives in its own folder under <c>Models/</c>
/// and is listed once in <see cref="ModelFamilies.All"/>.
/// </summary>
public sealed class ModelFamily
{
    internal ModelFamily(
        IReadOnlyList<string> modelTypes,
        Type modelClass,
        Func<ConfigJson, string, ModelConfig> parseConfig,
        Func<ModelConfig, ScalarType, torch.Device?, CausalLM> create)
    {
        ModelTypes = modelTypes;
        ModelClass = modelClass;
        ParseConfig = parseConfig;
        Create = create;
    }

    /// <summary><c>model_type</c> values of <c>config.json</c> this family reads (llama, mistral, ...).</summary>
    public IReadOnlyList<string> ModelTypes { get; }

    /// <summary>The C# model class it builds.</summary>
    public Type ModelClass { get; }

    /// <summary>The path of the <c>ModuleList</c> of decoder blocks (<c>model.layers</c>, <c>transformer.h</c>).</summary>
    public required string DecoderLayers { get; init; }

    /// <summary>Paths of the final norm's parameters (<c>model.norm.weight</c>; GPT-2's <c>ln_f</c> has a bias too).</summary>
    public required IReadOnlyList<string> FinalNormParameters { get; init; }

    /// <summary>PEFT's default <c>target_modules</c> per <c>peft_type</c> (<c>TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING</c>,
    /// <c>..._IA3_TARGET_MODULES_MAPPING</c>).</summary>
    public required IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultTargetModules { get; init; }

    /// <summary>PEFT's default IA3 <c>feedforward_modules</c> (<c>TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING</c>).</summary>
    public required IReadOnlyList<string> DefaultIa3FeedForwardModules { get; init; }

    internal Func<ConfigJson, string, ModelConfig> ParseConfig { get; }

    internal Func<ModelConfig, ScalarType, torch.Device?, CausalLM> Create { get; }
}
