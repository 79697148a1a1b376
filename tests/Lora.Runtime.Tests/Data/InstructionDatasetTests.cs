using Lora.Data;
using Lora.Tests;
using Lora.Tokenization;

namespace Lora.Runtime.Tests.Data;

public class InstructionDatasetTests
{
    [Fact]
    public void Loads_packs_samples_and_collates_an_alpaca_file()
    {
        var tokenizer = HfTokenizer.Load(TokenizerFixtures.Directory("llama3"));
        var path = Path.Combine(Fixtures.TempDirectory(), "alpaca.json");
        File.WriteAllText(path, "[" + string.Join(",\n", Enumerable.Range(0, 20).Select(i =>
            $"{{\"instruction\": \"Add {i} and {i}.\", \"input\": \"\", \"output\": \"{2 * i}\"}}")) + "]");

        var dataset = InstructionDataset.Load(path, tokenizer, new DataOptions { MaxLength = 128 });
        Assert.Equal(20, dataset.Examples.Count);
        Assert.Equal(20, dataset.Stats.Records);
        Assert.Null(dataset.Stats.Warning);
        Assert.Equal(dataset.Examples.Sum(e => e.PredictedTokens), dataset.Stats.TargetTokens);

        var rows = Packer.Pack(dataset.Examples, 128).ToList();
        Assert.Equal(dataset.Stats.Tokens, rows.Sum(r => r.Length));
        Assert.All(rows[..^1], r => Assert.Equal(128, r.Length));

        var sampler = new BatchSampler(dataset.Lengths, batchSize: 4, SamplingStrategy.GroupByLength, seed: 3);
        var collator = new Collator(Collator.PadIdOf(tokenizer));
        foreach (var indices in sampler.Batches(0))
        {
            using var batch = collator.Collate(indices.Select(i => dataset.Examples[i]).ToList());
            Assert.Equal(indices.Sum(i => dataset.Examples[i].PredictedTokens), batch.LabelTokens);
        }
    }

    [Fact]
    public void A_file_whose_examples_are_all_dropped_is_an_error()
    {
        var tokenizer = HfTokenizer.Load(TokenizerFixtures.Directory("qwen3"));
        var path = Path.Combine(Fixtures.TempDirectory(), "long.jsonl");
        File.WriteAllText(path, $"{{\"instruction\": \"{string.Join(' ', Enumerable.Range(0, 200))}\", \"output\": \"x\"}}\n");
        var e = Assert.Throws<LoraException>(() => InstructionDataset.Load(path, tokenizer, new DataOptions { MaxLength = 16 }));
        Assert.StartsWith(path + ": no examples left after tokenisation", e.Message, StringComparison.Ordinal);
    }
}
