using Lora.Data;

namespace Lora.Runtime.Tests.Data;

public class BatchSamplerTests
{
    private static readonly int[] Lengths = [.. Enumerable.Range(0, 1000).Select(i => 1 + (i * 7919 % 997))];

    [Theory]
    [InlineData(SamplingStrategy.Random)]
    [InlineData(SamplingStrategy.GroupByLength)]
    public void Same_seed_gives_the_same_order_and_each_epoch_is_a_permutation(SamplingStrategy strategy)
    {
        var a = new BatchSampler(Lengths, batchSize: 4, strategy, seed: 7);
        var b = new BatchSampler(Lengths, batchSize: 4, strategy, seed: 7);
        Assert.Equal(a.Order(0), b.Order(0));
        Assert.Equal(a.Order(3), b.Order(3));
        Assert.NotEqual(a.Order(0), a.Order(1));
        Assert.NotEqual(a.Order(0), new BatchSampler(Lengths, 4, strategy, seed: 8).Order(0));
        Assert.Equal(Enumerable.Range(0, Lengths.Length), a.Order(2).Order());
    }

    [Fact]
    public void Resuming_at_batch_k_reproduces_the_tail_of_the_epoch()
    {
        var sampler = new BatchSampler(Lengths, batchSize: 6, SamplingStrategy.Random, seed: 42);
        var full = sampler.Batches(epoch: 2).ToList();
        var resumed = new BatchSampler(Lengths, batchSize: 6, SamplingStrategy.Random, seed: 42).Batches(epoch: 2, startBatch: 37).ToList();
        Assert.Equal(167, sampler.BatchesPerEpoch);
        Assert.Equal(full.Count - 37, resumed.Count);
        for (var i = 0; i < resumed.Count; i++)
            Assert.Equal(full[37 + i], resumed[i]);
        Assert.Equal(4, full[^1].Length); // 1000 = 166·6 + 4, kept unless dropLast
        Assert.Equal(166, new BatchSampler(Lengths, 6, dropLast: true).Batches(0).Count());
    }

    [Fact]
    public void Length_grouping_puts_similar_lengths_together_and_the_longest_first()
    {
        const int batch = 4;
        var grouped = new BatchSampler(Lengths, batch, SamplingStrategy.GroupByLength, seed: 1);
        var random = new BatchSampler(Lengths, batch, SamplingStrategy.Random, seed: 1);

        double Spread(BatchSampler s) => s.Batches(0).Average(b => b.Max(i => Lengths[i]) - b.Min(i => Lengths[i]));
        Assert.True(Spread(grouped) * 10 < Spread(random), $"grouped {Spread(grouped)} vs random {Spread(random)}");
        Assert.Equal(Lengths.Max(), Lengths[grouped.Order(0)[0]]);

        // Megabatches of min(1000 / 16, 50) = 50 batches = 200 examples, each sorted longest first
        // (except its head, which may have been swapped with the overall longest).
        var order = grouped.Order(0);
        for (var m = 0; m < 5; m++)
        {
            var mega = order[(m * 200 + 1)..((m + 1) * 200)].Select(i => Lengths[i]).ToArray();
            Assert.Equal(mega.OrderDescending(), mega);
        }
    }

    [Fact]
    public void Sequential_keeps_the_file_order()
    {
        var sampler = new BatchSampler([3, 1, 2], batchSize: 2, SamplingStrategy.Sequential);
        Assert.Equal([[0, 1], [2]], sampler.Batches(5));
    }
}
