using Lora.Data;
using Lora.Evaluation;
using Lora.Generation;
using Lora.Models;
using Lora.Tokenization;

namespace Lora.Runtime.Tests.Evaluation;

public class ExactMatchEvaluatorTests
{
    /// <summary>The llama_qv base with the byte-level tokenizer (its ids fit the model's vocabulary).</summary>
    private static string ModelDirectory()
    {
        var dir = Fixtures.TempDirectory();
        foreach (var f in Directory.GetFiles(Fixtures.Peft("llama_qv", "base")).Concat(Directory.GetFiles(Path.Combine(Fixtures.Root, "tokenizers", "bytes"))))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    [Theory]
    [InlineData("cold", " cold\n", true)]
    [InlineData("cold", "cold.", false)]
    [InlineData("Cold", "cold", false)]
    [InlineData("domestic animal", "domestic  animal", false)]
    public void Match_is_exact_after_trimming_whitespace(string expected, string generated, bool match) =>
        Assert.Equal(match, ExactMatchEvaluator.Matches(generated, expected));

    [Fact]
    public void Scores_greedy_answers_to_the_template_prompts_one_by_one_or_batched()
    {
        var dir = ModelDirectory();
        using var model = CausalLM.FromPretrained(dir);
        var tokenizer = HfTokenizer.Load(dir);
        AlpacaRecord[] questions = [new("What is the opposite of hot?", "", "?"), new("Name a colour.", "", "?"), new("Add.", "2 3", "?")];

        // What the model answers, one prompt at a time, rendered as training renders it.
        var tokens = TemplateTokens.From(tokenizer);
        var alone = questions.Select(q => TextGenerator.Generate(model, tokenizer, [PromptTemplate.Alpaca.GenerationPrompt(q, tokens)],
            new GenerationOptions { MaxNewTokens = 6 })[0].Text).ToList();
        Assert.StartsWith("Below is an instruction that describes a task, paired with an input", PromptTemplate.Alpaca.GenerationPrompt(questions[2], tokens), StringComparison.Ordinal);
        Assert.EndsWith("### Response:", PromptTemplate.Alpaca.GenerationPrompt(questions[0], tokens), StringComparison.Ordinal);

        // Two references equal those answers (up to surrounding whitespace), one does not.
        AlpacaRecord[] records = [questions[0] with { Output = " " + alone[0] + " " }, questions[1] with { Output = alone[1] + "!" }, questions[2] with { Output = alone[2] }];
        var result = ExactMatchEvaluator.Evaluate(model, tokenizer, records, maxNewTokens: 6, batchSize: 2);
        Assert.Equal(alone, result.Examples.Select(e => e.Generated));
        Assert.Equal([true, false, true], result.Examples.Select(e => e.IsMatch));
        Assert.Equal(2, result.Correct);
        Assert.Equal(2.0 / 3, result.Score, 12);
    }

    [Fact]
    public void Reads_alpaca_records_and_rejects_other_kinds()
    {
        var dir = Fixtures.TempDirectory();
        var alpaca = Path.Combine(dir, "eval.json");
        File.WriteAllText(alpaca, """[{"instruction": "What is the opposite of hot?", "input": "", "output": "cold"}]""");
        Assert.Equal("cold", Assert.Single(ExactMatchEvaluator.ReadRecords(alpaca)).Output);

        var chat = Path.Combine(dir, "chat.jsonl");
        File.WriteAllText(chat, """{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}""");
        Assert.Throws<LoraException>(() => ExactMatchEvaluator.ReadRecords(chat));
    }
}
