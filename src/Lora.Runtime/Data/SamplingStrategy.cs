namespace Lora.Data;

/// <summary>The order <see cref="BatchSampler"/> visits examples in.</summary>
public enum SamplingStrategy
{
    /// <summary>A fresh seeded permutation each epoch (transformers' <c>"random"</c>).</summary>
    Random,

    /// <summary>transformers' <c>"group_by_length"</c>: seeded megabatches sorted by length, longest batch first.</summary>
    GroupByLength,

    /// <summary>The file order (evaluation).</summary>
    Sequential,
}
