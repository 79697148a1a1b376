namespace Lora.Quantization;

/// <summary>
/// The code tables bitsandbytes quantizes to (<c>bitsandbytes/functional.py</c>): the 16 NF4 and FP4 values of
/// <c>get_4bit_type</c> and the 256-entry signed dynamic map of <c>create_dynamic_map</c> used for the double
/// quantization of the 4-bit scales. All in fp32, computed exactly as there, so the tables written into a checkpoint
/// (<c>weight.quant_map</c>, <c>weight.nested_quant_map</c>) equal bitsandbytes' byte for byte.
/// </summary>
public static class CodeTables
{
    /// <summary>NF4 (<c>get_4bit_type("nf4")</c>: <c>create_normal_map(offset=0.9677083, use_extra_value=True)</c>, hard-coded
    /// there), sorted ascending, so the code index is the rank.</summary>
    public static IReadOnlyList<float> Nf4 { get; } =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>FP4 (<c>get_4bit_type("fp4")</c>): the values of the bit patterns 0b0000…0b1111 (sign bit first, then
    /// 2 exponent and 1 mantissa bit: 0, 0.0625, 8, 12, 4, 6, 2, 3 and their negatives), divided by their absmax 12 in
    /// fp32. Not sorted: quantizing ranks them (<c>argsort</c>) first. Index 8 is +0 too (Python's <c>-0</c> there is
    /// the integer 0).</summary>
    public static IReadOnlyList<float> Fp4 { get; } =
        new[] { 0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f, 0f, -0.0625f, -8f, -12f, -4f, -6f, -2f, -3f }.Select(v => v / 12f).ToArray();

    /// <summary>The 4-bit table of <paramref name="type"/>.</summary>
    public static IReadOnlyList<float> FourBit(QuantizationType type) => type switch
    {
        QuantizationType.Nf4 => Nf4,
        QuantizationType.Fp4 => Fp4,
        _ => throw new ArgumentException("int8 has no 4-bit code table.", nameof(type)),
    };

    /// <summary>
    /// <c>create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)</c>: for exponent i = 0…6, the midpoints
    /// of <c>linspace(0.1, 1, 2^i + 1)</c> (fp32) scaled by ±10^(i−6), then 0 and 1, sorted — 256 values in [−1, 1].
    /// <c>torch.linspace</c>'s last bits depend on the CPU kernel that computes it (see <see cref="Linspace"/>); this
    /// is the table of PyTorch 2 on an AVX-512 host (where bitsandbytes runs next to a GPU). Loading always uses the
    /// table stored in the checkpoint.
    /// </summary>
    public static IReadOnlyList<float> Dynamic { get; } = CreateDynamicMap(Avx512Lanes);

    /// <summary>fp32 lanes of ATen's vectorized CPU kernels: 16 with AVX-512, 8 with AVX2.</summary>
    public const int Avx512Lanes = 16, Avx2Lanes = 8;

    /// <summary><see cref="Dynamic"/> as computed by ATen kernels with <paramref name="lanes"/> fp32 lanes.</summary>
    public static float[] CreateDynamicMap(int lanes)
    {
        const int maxExponentBits = 7, nonSignBits = 7;
        var data = new List<float>(256);
        for (var i = 0; i < maxExponentBits; i++)
        {
            var fractionItems = (1 << (i + nonSignBits - maxExponentBits)) + 1;
            var boundaries = Linspace(0.1f, 1f, fractionItems, lanes);
            var means = new float[fractionItems - 1];
            for (var j = 0; j < means.Length; j++)
                means[j] = (boundaries[j] + boundaries[j + 1]) / 2.0f;
            // Python: (10 ** e) * means — the double scalar is cast to fp32, then an fp32 product.
            var scale = (float)Math.Pow(10, -(maxExponentBits - 1) + i);
            data.AddRange(means.Select(m => scale * m));
            data.AddRange(means.Select(m => -scale * m));
        }

        data.Add(0f);
        data.Add(1f);
        data.Sort();
        return [.. data];
    }

    /// <summary>
    /// <c>torch.linspace(start, end, steps, dtype=float32)</c> as ATen's CPU kernel computes it
    /// (<c>aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp</c>, <c>linspace_kernel</c>): an fp32 step; element i is
    /// <c>start + step·i</c> below the halfway point and <c>end − step·(steps − 1 − i)</c> from it. The kernel is
    /// compiled with FMA: those are fused multiply-adds, while its vector path (pairs of <paramref name="lanes"/>-wide
    /// vectors, the rest scalar) fills lane k as <c>base + (k·step)</c>, rounded twice.
    /// </summary>
    internal static float[] Linspace(float start, float end, int steps, int lanes)
    {
        var result = new float[steps];
        if (steps == 1)
        {
            result[0] = start;
            return result;
        }

        var step = (end - start) / (steps - 1);
        var halfway = steps / 2;
        float At(int i) => i < halfway ? MathF.FusedMultiplyAdd(step, i, start) : MathF.FusedMultiplyAdd(-step, steps - i - 1, end);
        var next = 0;
        for (; next <= steps - 2 * lanes; next += 2 * lanes)
        {
            for (var vector = next; vector < next + 2 * lanes; vector += lanes)
            {
                var baseValue = At(vector);
                for (var k = 0; k < lanes; k++)
                    result[vector + k] = baseValue + k * step;
            }
        }

        for (; next < steps; next++)
            result[next] = At(next);
        return result;
    }
}
