using System.Globalization;
using Lora.Data;
using Lora.Tokenization;

namespace Lora.Cli.Commands;

/// <summary>
/// The data files commands read: pre-tokenised JSONL (<c>{"input_ids": [...], "labels": [...]}</c>) is used as it
/// is and needs no tokenizer; anything else (Alpaca, chat, text) goes through the model's tokenizer and prompt
/// template, with completion-only labels.
/// </summary>
internal static class CommandData
{
    /// <summary>The examples of <paramref name="path"/>, a one-line summary, and a warning line (or null).</summary>
    public static (IReadOnlyList<TokenizedExample> Examples, string Summary, string? Warning) Load(string path, string modelDir, string? template, int maxLength, Lazy<HfTokenizer> tokenizer)
    {
        var (format, _) = DatasetReader.Detect(path);
        if (format == DataFormat.Tokenized)
        {
            var rows = TokenizedJsonlReader.Read(path).ToList();
            if (rows.Count == 0)
                throw new LoraException($"{path}: no examples (every line is blank).");
            var tooLong = rows.FindIndex(r => r.InputIds.Length > maxLength);
            if (tooLong >= 0)
                throw new LoraException($"{path}: row {tooLong + 1} has {rows[tooLong].InputIds.Length} tokens, more than --max-length {maxLength}; pre-tokenised rows are used as given, so cut them or raise --max-length.");
            var inv = CultureInfo.InvariantCulture;
            return (rows, $"{rows.Count.ToString("N0", inv)} pre-tokenised examples, {rows.Sum(r => (long)r.InputIds.Length).ToString("N0", inv)} tokens ({rows.Sum(r => (long)r.PredictedTokens).ToString("N0", inv)} in the loss)", null);
        }

        var options = new DataOptions { MaxLength = maxLength, Template = template is null ? null : PromptTemplate.Parse(template, modelDir) };
        var dataset = InstructionDataset.Load(path, tokenizer.Value, options);
        return (dataset.Examples, dataset.Stats.ToString(), dataset.Stats.Warning);
    }

    /// <summary>Whether <paramref name="path"/> is pre-tokenised (then no tokenizer is needed).</summary>
    public static bool IsTokenized(string path) => DatasetReader.Detect(path).Format == DataFormat.Tokenized;
}
