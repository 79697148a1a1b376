using System.Text.Json.Nodes;
using Lora.Models;
using Lora.Peft;
using Lora.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Tuners.PromptTuning;

/// <summary>
/// Prompt tuning (PEFT <c>peft_type: "PROMPT_TUNING"</c>, <c>tuners/prompt_tuning/</c>): a <see cref="PromptEmbedding"/>
/// whose rows are prepended to the input embeddings. Text initialisation follows <c>PromptEmbedding.__init__</c>: the
/// text is tokenised as the tokenizer does by default (special tokens included), the ids cut to the number of virtual
/// tokens or repeated up to it, and their word embeddings copied (fp32).
/// </summary>
public sealed class PromptTuningMethod : PromptLearningMethod<PromptTuningConfig>
{
    public const string PeftTypeName = "PROMPT_TUNING";

    private PromptTuningMethod()
    {
    }

    public static PromptTuningMethod Instance { get; } = new();

    public override string PeftType => PeftTypeName;

    public override string DisplayName => "prompt tuning";

    protected override PromptTuningConfig ReadOwn(PeftConfigFields fields)
    {
        fields.RequireDefault("tokenizer_kwargs");
        return new PromptTuningConfig
        {
            PromptTuningInit = fields.String("prompt_tuning_init") switch
            {
                null or "RANDOM" => PromptTuningInit.Random,
                "TEXT" => PromptTuningInit.Text,
                "SAMPLE_VOCAB" => PromptTuningInit.SampleVocab,
                var other => throw fields.Error("prompt_tuning_init", $"is \"{other}\"; expected RANDOM, TEXT or SAMPLE_VOCAB."),
            },
            PromptTuningInitText = fields.String("prompt_tuning_init_text"),
            TokenizerNameOrPath = fields.String("tokenizer_name_or_path"),
        };
    }

    protected override void WriteOwn(PromptTuningConfig config, IDictionary<string, JsonNode?> fields)
    {
        fields["prompt_tuning_init"] = config.PromptTuningInit switch
        {
            PromptTuningInit.Text => "TEXT",
            PromptTuningInit.SampleVocab => "SAMPLE_VOCAB",
            _ => "RANDOM",
        };
        fields["prompt_tuning_init_text"] = config.PromptTuningInitText;
        fields["tokenizer_name_or_path"] = config.TokenizerNameOrPath;
        fields["tokenizer_kwargs"] = null;
    }

    /// <summary>PEFT's <c>PromptTuningConfig.__post_init__</c> rule: text initialisation needs the text; the
    /// tokenizer defaults to the model's directory.</summary>
    protected override PromptTuningConfig PrepareOwn(CausalLM model, PromptTuningConfig config)
    {
        if (config.PromptTuningInit != PromptTuningInit.Text || config.InferenceMode)
            return config;
        if (string.IsNullOrEmpty(config.PromptTuningInitText))
            throw new LoraException("prompt tuning: prompt_tuning_init is TEXT but prompt_tuning_init_text is not set (PEFT requires it).");
        if (config.TokenizerNameOrPath is null && model.Config.Source is { } source)
            return config with { TokenizerNameOrPath = Path.GetDirectoryName(Path.GetFullPath(source)) };
        return config.TokenizerNameOrPath is null
            ? throw new LoraException("prompt tuning: prompt_tuning_init is TEXT but tokenizer_name_or_path is not set and the model was not loaded from a directory.")
            : config;
    }

    protected override PromptEncoder CreateEncoder(CausalLM model, PromptTuningConfig config)
    {
        var table = model.InputEmbedding
            ?? throw new LoraException($"{model.GetType().Name} does not name its input embedding table (CausalLM.InputEmbedding); prompt tuning needs it.");
        var encoder = new PromptEmbedding(config.NumVirtualTokens, config.TokenDim!.Value, table.Weight.device);
        if (config.InferenceMode || config.PromptTuningInit == PromptTuningInit.Random)
            return encoder;
        var n = config.NumVirtualTokens;
        int[] ids;
        if (config.PromptTuningInit == PromptTuningInit.SampleVocab)
        {
            using var drawn = randint(0, table.NumEmbeddings, [n], ScalarType.Int64);
            ids = drawn.data<long>().Select(v => (int)v).ToArray();
        }
        else
        {
            var text = HfTokenizer.Load(config.TokenizerNameOrPath!).Encode(config.PromptTuningInitText!);
            if (text.Length == 0)
                throw new LoraException($"prompt tuning: prompt_tuning_init_text \"{config.PromptTuningInitText}\" has no tokens.");
            ids = Enumerable.Range(0, n).Select(i => text[i % text.Length]).ToArray();
        }

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var rows = table.Weight.index_select(0, tensor(ids.Select(i => (long)i).ToArray(), device: table.Weight.device));
        encoder.Table.copy_(rows.to(ScalarType.Float32));
        return encoder;
    }
}
