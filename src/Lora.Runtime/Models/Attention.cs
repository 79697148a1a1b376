using Lora.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>Pieces of multi-head attention shared by the architectures.</summary>
internal static class Attention
{
    /// <summary>
    /// <c>softmax(q kᵀ / sqrt(d) + mask) v</c> for q <c>(B, H, T, d)</c>, k/v <c>(B, H, Tk, d)</c> →
    /// <c>(B, H, T, d)</c>, through <c>scaled_dot_product_attention</c> (same math as transformers' sdpa path;
    /// its default scale is 1/sqrt(d)). A null mask means causal: with T == Tk the kernel's own causal path, and with one
    /// query (a decode step without padding) every key, unmasked — what transformers' sdpa path does when its mask
    /// is all true (<c>is_causal = query_length > 1</c>, integrations/sdpa_attention.py), since SDPA's <c>is_causal</c>
    /// aligns the triangle top-left and would let a lone query see only the first key.
    /// </summary>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, Tensor? mask, double dropout = 0.0) =>
        mask is null
            ? nn.functional.scaled_dot_product_attention(q, k, v, null, dropout, Causal(q, k))
            : nn.functional.scaled_dot_product_attention(q, k, v, mask, dropout, false);

    /// <summary>Whether an unmasked pass is causal: T == Tk (causal) or T == 1 (every key); anything else needs a mask.</summary>
    private static bool Causal(Tensor q, Tensor k)
    {
        var (t, tk) = (q.shape[2], k.shape[2]);
        if (t == 1)
            return false;
        return t == tk ? true : throw new ArgumentException($"an unmasked attention pass over {t} queries and {tk} keys is ambiguous: give the (B, 1, T, Tk) mask.");
    }

    /// <summary>
    /// <see cref="ScaledDotProduct"/> with grouped-query attention: k/v <c>(B, H_kv, Tk, d)</c> with H a multiple of
    /// H_kv. The kernel shares each key/value head with its group of query heads (<c>enable_gqa</c>, through
    /// <see cref="AtenScript.GroupedAttention"/>), so K and V are not copied to every head — nor their gradients summed back —
    /// as with <see cref="RepeatKv"/>. Only without a mask, as transformers decides (<c>use_gqa_in_sdpa</c>,
    /// integrations/sdpa_attention.py): with an explicit mask SDPA cannot take its flash kernel and its GQA support then
    /// falls back to the math kernel, so masked passes (padding, KV cache, the block-diagonal packed mask) repeat K/V and
    /// keep the memory-efficient kernel. The composite path (<see cref="FusedKernels.Enabled"/> off) always repeats.
    /// </summary>
    public static Tensor GroupedQuery(Tensor q, Tensor k, Tensor v, Tensor? mask, double dropout = 0.0)
    {
        var repeats = q.shape[1] / k.shape[1];
        if (repeats == 1)
            return ScaledDotProduct(q, k, v, mask, dropout);
        if (FusedKernels.Enabled && mask is null)
            return AtenScript.GroupedAttention(q, k, v, dropout, Causal(q, k));
        using var scope = NewDisposeScope();
        return ScaledDotProduct(q, RepeatKv(k, repeats), RepeatKv(v, repeats), mask, dropout).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Causal attention within each packed example (<see cref="PackedSegments"/>): q <c>(B, H, T, d)</c>, k/v
    /// <c>(B, H_kv, T, d)</c> → <c>(B, H, T, d)</c>, one unmasked causal <see cref="GroupedQuery"/> per segment, so
    /// no example sees another and no <c>(B, 1, T, T)</c> mask exists (transformers' padding-free flash-attention path
    /// runs one varlen kernel over the same segments).
    /// </summary>
    public static Tensor PerSegment(Tensor q, Tensor k, Tensor v, PackedSegments segments)
    {
        using var scope = NewDisposeScope();
        var rows = new Tensor[segments.Rows.Length];
        for (var b = 0; b < rows.Length; b++)
        {
            var parts = segments.Rows[b]
                .Select(s => GroupedQuery(q.narrow(0, b, 1).narrow(2, s.Start, s.Length), k.narrow(0, b, 1).narrow(2, s.Start, s.Length), v.narrow(0, b, 1).narrow(2, s.Start, s.Length), null))
                .ToList();
            rows[b] = parts.Count == 1 ? parts[0] : cat(parts, 2);
        }

        return cat(rows, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Grouped-query attention: <c>(B, n_kv, T, d) → (B, n_kv·rep, T, d)</c>, each kv head repeated
    /// <paramref name="repeats"/> times in place (head h reads kv head h / rep), like transformers' <c>repeat_kv</c>.</summary>
    public static Tensor RepeatKv(Tensor x, long repeats) => repeats == 1 ? x.alias() : x.repeat_interleave(repeats, dim: 1);
}
