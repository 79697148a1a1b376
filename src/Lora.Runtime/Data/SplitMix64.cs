namespace Lora.Data;

/// <summary>
/// A tiny seeded generator (Steele et al.'s SplitMix64) so that sample orders are fixed by the seed alone, whatever
/// the .NET version: resuming a run on another machine must visit the same batches.
/// </summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong Next()
    {
        var z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-32 for n &lt; 2^32).</summary>
    public int NextInt(int n) => (int)((Next() >> 32) * (ulong)n >> 32);

    /// <summary>A Fisher-Yates permutation of 0..n-1 (what <c>torch.randperm</c> gives, with another generator).</summary>
    public int[] Permutation(int n)
    {
        var result = new int[n];
        for (var i = 0; i < n; i++)
            result[i] = i;
        for (var i = n - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (result[i], result[j]) = (result[j], result[i]);
        }

        return result;
    }
}
