using Lora.Data;
using Lora.Generation;
using Lora.Models;
using Lora.Tokenization;

namespace Lora.Evaluation;

/// <summary>One scored example: the record, what the model answered, and whether it is an exact match.</summary>
public sealed record ExactMatchExample(AlpacaRecord Record, string Generated)
{
    public bool IsMatch => ExactMatchEvaluator.Matches(Generated, Record.Output);
}

/// <summary>The share of exact matches (0…1) over <see cref="Examples"/>.</summary>
public sealed record ExactMatchResult(IReadOnlyList<ExactMatchExample> Examples)
{
    public int Correct => Examples.Count(e => e.IsMatch);

    public double Score => Examples.Count == 0 ? 0 : (double)Correct / Examples.Count;
}

/// <summary>
/// Task accuracy of instruction following: each record's prompt (rendered by the template, as training renders it,
/// up to where the response starts) is completed greedily by <see cref="TextGenerator"/> — the code
/// <c>lora generate</c> runs — and the answer counts when it equals the record's output after trimming whitespace at
/// both ends (SQuAD-style exact match without its other normalisation: case and punctuation count).
/// </summary>
public static class ExactMatchEvaluator
{
    /// <summary>Exact match after trimming leading and trailing whitespace.</summary>
    public static bool Matches(string generated, string expected) =>
        string.Equals(generated.Trim(), expected.Trim(), StringComparison.Ordinal);

    /// <summary>Scores greedy answers to <paramref name="records"/>.</summary>
    /// <param name="model">The model (with any adapters it should answer with).</param>
    /// <param name="tokenizer">Its tokenizer.</param>
    /// <param name="records">Questions with their reference answers.</param>
    /// <param name="template">The prompt template (<see cref="PromptTemplate.Alpaca"/> when null).</param>
    /// <param name="maxNewTokens">Tokens per answer at most.</param>
    /// <param name="batchSize">Prompts generated together (left-padded; the answers equal one-by-one generation).</param>
    public static ExactMatchResult Evaluate(CausalLM model, HfTokenizer tokenizer, IReadOnlyList<AlpacaRecord> records,
        PromptTemplate? template = null, int maxNewTokens = 32, int batchSize = 16)
    {
        ArgumentNullException.ThrowIfNull(records);
        template ??= PromptTemplate.Alpaca;
        var tokens = TemplateTokens.From(tokenizer);
        var prompts = records.Select(r => template.GenerationPrompt(r with { Output = string.Empty }, tokens)).ToList();
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens };
        var completions = TextGenerator.Generate(model, tokenizer, prompts, options, template.AddSpecialTokens, batchSize);
        return new ExactMatchResult(records.Zip(completions, (r, c) => new ExactMatchExample(r, c.Text)).ToList());
    }

    /// <summary>The Alpaca records of a file (JSON array or JSON lines); other record kinds are an error.</summary>
    public static IReadOnlyList<AlpacaRecord> ReadRecords(string path)
    {
        var records = new List<AlpacaRecord>();
        foreach (var record in DatasetReader.Read(path, DataFormat.Alpaca))
        {
            records.Add(record as AlpacaRecord
                ?? throw new LoraException($"{record.Location}: exact match needs Alpaca records {{instruction, input, output}}."));
        }

        if (records.Count == 0)
            throw new LoraException($"{path}: no records.");
        return records;
    }
}
