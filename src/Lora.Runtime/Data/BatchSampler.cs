namespace Lora.Data;

/// <summary>
/// Splits example indices into batches, epoch by epoch. The order depends only on (seed, epoch), so a run resumed
/// at batch k of epoch e (<see cref="Batches(int, int)"/> with <c>startBatch: k</c>) sees exactly the batches the
/// first run would have. <see cref="SamplingStrategy.GroupByLength"/> follows transformers'
/// <c>get_length_grouped_indices</c>: a random permutation is cut into megabatches of
/// <c>min(n / (4·batch), 50)</c> batches, each sorted by length (longest first), and the megabatch holding the
/// longest example moves its head to the very front, so an out-of-memory shows at the first step.
/// </summary>
public sealed class BatchSampler
{
    private readonly int[] _lengths;

    /// <param name="lengths">Token count of each example (any positive proxy works for grouping).</param>
    /// <param name="batchSize">Examples per batch.</param>
    /// <param name="strategy">The visiting order.</param>
    /// <param name="seed">Fixes the order of every epoch (transformers' <c>data_seed</c>, default 42).</param>
    /// <param name="dropLast">Leave out the last, smaller batch.</param>
    public BatchSampler(IReadOnlyList<int> lengths, int batchSize, SamplingStrategy strategy = SamplingStrategy.Random, int seed = 42, bool dropLast = false)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        _lengths = [.. lengths];
        BatchSize = batchSize;
        Strategy = strategy;
        Seed = seed;
        DropLast = dropLast;
    }

    public int BatchSize { get; }

    public SamplingStrategy Strategy { get; }

    public int Seed { get; }

    public bool DropLast { get; }

    public int Count => _lengths.Length;

    public int BatchesPerEpoch => DropLast ? Count / BatchSize : (Count + BatchSize - 1) / BatchSize;

    /// <summary>The example order of <paramref name="epoch"/> (0-based).</summary>
    public int[] Order(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        var random = new SplitMix64(new SplitMix64((ulong)(uint)Seed).Next() ^ (ulong)epoch);
        return Strategy switch
        {
            SamplingStrategy.Sequential => Enumerable.Range(0, Count).ToArray(),
            SamplingStrategy.Random => random.Permutation(Count),
            _ => LengthGrouped(random.Permutation(Count)),
        };
    }

    /// <summary>The batches of <paramref name="epoch"/> from batch <paramref name="startBatch"/> on (resume).</summary>
    public IEnumerable<int[]> Batches(int epoch, int startBatch = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(startBatch);
        var order = Order(epoch);
        for (var b = startBatch; b < BatchesPerEpoch; b++)
        {
            var start = b * BatchSize;
            yield return order[start..Math.Min(start + BatchSize, order.Length)];
        }
    }

    private int[] LengthGrouped(int[] permutation)
    {
        if (permutation.Length == 0)
            return permutation;
        var megabatchSize = Math.Max(Math.Min(Count / (BatchSize * 4), 50), 1) * BatchSize;
        var megabatches = permutation.Chunk(megabatchSize)
            .Select(m => m.OrderByDescending(i => _lengths[i]).ToArray()) // stable, like Python's sorted
            .ToList();
        var longest = 0;
        for (var m = 1; m < megabatches.Count; m++)
        {
            if (_lengths[megabatches[m][0]] > _lengths[megabatches[longest][0]])
                longest = m;
        }

        (megabatches[0][0], megabatches[longest][0]) = (megabatches[longest][0], megabatches[0][0]);
        return [.. megabatches.SelectMany(m => m)];
    }
}
