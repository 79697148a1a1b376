using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Kernels;

/// <summary>
/// aten operators that TorchSharp 0.107 does not bind, reached through TorchScript (the builtins resolve there, as in
/// <c>Backend/MultiTensorOps</c>): <c>scaled_dot_product_attention</c> with <c>enable_gqa</c> (the key/value heads are
/// shared by groups of query heads inside the kernel instead of being copied to every head first, as transformers'
/// <c>sdpa_attention_forward</c> does when it passes <c>enable_gqa</c>, integrations/sdpa_attention.py) and
/// <c>silu_backward</c> (the one-kernel gradient of SiLU, what autograd's <c>SiluBackward0</c> runs). Compiled once per
/// process; a compile error there aborts the process instead of throwing (DESIGN.md), so the tests call every function.
/// </summary>
internal static class AtenScript
{
    private const string Script = """
        def grouped_attention(q: Tensor, k: Tensor, v: Tensor, dropout: float, causal: bool) -> Tensor:
            return torch.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal, enable_gqa=True)

        def silu_backward(grad: Tensor, x: Tensor) -> Tensor:
            return torch.silu_backward(grad, x)

        """;

    private static readonly Lazy<jit.CompilationUnit> Unit = new(() => jit.compile(Script), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Unmasked <c>softmax(q kᵀ/√d) v</c> for q <c>(B, H, T, d)</c> and k/v <c>(B, H_kv, Tk, d)</c>, H a
    /// multiple of H_kv (query head h reads key/value head h / (H/H_kv), as <c>repeat_kv</c> arranges them) →
    /// <c>(B, H, T, d)</c>: causal (T == Tk) or, for one query, over every key. Differentiable. Masked passes do not
    /// come here (see <c>Attention.GroupedQuery</c>).</summary>
    public static Tensor GroupedAttention(Tensor q, Tensor k, Tensor v, double dropout, bool causal) =>
        Unit.Value.invoke<Tensor>("grouped_attention", q, k, v, dropout, causal);

    /// <summary>∂L/∂x of <c>silu(x)</c> given ∂L/∂silu(x): <c>grad · σ(x)(1 + x(1 − σ(x)))</c> in one kernel.</summary>
    public static Tensor SiluBackward(Tensor grad, Tensor x) => Unit.Value.invoke<Tensor>("silu_backward", grad, x);
}
