using Lora.Data;
using Lora.Data.Preference;
using Lora.Tokenization;

namespace Lora.Cli.Commands;

/// <summary>Preference and prompt files for the alignment commands: pre-tokenised ones need no tokenizer (the
/// model directory may have none), the others go through the model's tokenizer and chat template.</summary>
internal static class AlignmentData
{
    public static PreferenceDataset Pairs(string path, Lazy<HfTokenizer> tokenizer, PromptTemplate? template)
    {
        var tokens = PreferenceReader.Read(path).First().Kind == PreferenceKind.Tokens;
        var dataset = PreferenceDataset.Load(path, tokens ? null : tokenizer.Value, template);
        return dataset;
    }

    public static PromptDataset Prompts(string path, Lazy<HfTokenizer> tokenizer, PromptTemplate? template)
    {
        var tokens = PromptReader.Read(path).First().Prompt.Kind == PreferenceKind.Tokens;
        return PromptDataset.Load(path, tokens ? TryLoad(tokenizer) : tokenizer.Value, template);
    }

    /// <summary>The tokenizer when the model directory has one (to decode pre-tokenised prompts for the reward
    /// functions), else null.</summary>
    private static HfTokenizer? TryLoad(Lazy<HfTokenizer> tokenizer)
    {
        try
        {
            return tokenizer.Value;
        }
        catch (LoraException)
        {
            return null;
        }
    }
}
