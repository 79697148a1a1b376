using Lora.Tokenization;

namespace Lora.Data.Preference;

/// <summary>A preference file read and tokenised in one call (<see cref="PreferenceReader"/> then
/// <see cref="PreferenceTokenizer"/>), kept in memory as token ids.</summary>
public sealed record PreferenceDataset(IReadOnlyList<PreferenceExample> Pairs, PreferenceStats Stats)
{
    /// <param name="path">JSON array or JSON lines of preference records.</param>
    /// <param name="tokenizer">The model's tokenizer; null is enough for pre-tokenised data.</param>
    /// <param name="template">Chat template for conversational records (null: ChatML).</param>
    public static PreferenceDataset Load(string path, HfTokenizer? tokenizer, PromptTemplate? template = null)
    {
        var step = new PreferenceTokenizer(tokenizer, template);
        var pairs = PreferenceReader.Read(path).Select(step.Tokenize).ToList();
        return new PreferenceDataset(pairs, step.Stats);
    }
}
