using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>Pieces of multi-head attention shared by the architectures.</summary>
internal static class Attention
{
    /// <summary>
    /// <c>softmax(q kᵀ / sqrt(d) + mask) v</c> for q <c>(B, H, T, d)</c>, k/v <c>(B, H, Tk, d)</c> →
    /// <c>(B, H, T, d)</c>, through <c>scaled_dot_product_attention</c> (same math as transformers' sdpa path;
    /// its default scale is 1/sqrt(d)). A null mask means causal with T == Tk.
    /// </summary>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, Tensor? mask, double dropout = 0.0) =>
        mask is null
            ? nn.functional.scaled_dot_product_attention(q, k, v, null, dropout, true)
            : nn.functional.scaled_dot_product_attention(q, k, v, mask, dropout, false);

    /// <summary>Grouped-query attention: <c>(B, n_kv, T, d) → (B, n_kv·rep, T, d)</c>, each kv head repeated
    /// <paramref name="repeats"/> times in place (head h reads kv head h / rep), like transformers' <c>repeat_kv</c>.</summary>
    public static Tensor RepeatKv(Tensor x, long repeats) => repeats == 1 ? x.alias() : x.repeat_interleave(repeats, dim: 1);
}
