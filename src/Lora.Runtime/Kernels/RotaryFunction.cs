using Lora.Backend;
using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Lora.Kernels;

/// <summary>
/// Rotary position embedding <c>x·cos + rotate_half(x)·sin</c> (transformers' <c>apply_rotary_pos_emb</c>) as one
/// autograd function. The forward is the composite's (<see cref="RotaryEmbedding.Apply"/>: same ops, same values);
/// the backward applies the transposed rotation, <c>∂x = g·cos + rotate_halfᵀ(g·sin)</c> with
/// <c>rotate_halfᵀ([a, b]) = [b, −a]</c>, as one multiplication and two half-width multiply-adds in place, instead of
/// autograd's chain through the two halves, the negation and the concatenation (which zero-fills and accumulates each
/// half separately). Nothing is saved but the cos/sin tables, which are alive anyway.
/// </summary>
internal sealed class RotaryFunction : SingleTensorFunction<RotaryFunction>
{
    public override string Name => "Rotary";

    /// <summary><c>x (B, H, T, d)</c>, cos/sin <c>(B, 1, T, d)</c> (broadcast over heads) → <c>(B, H, T, d)</c>.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin) => apply(x, cos, sin);

    /// <summary>The composite rotation, as the forward of both paths.</summary>
    public static Tensor Composite(Tensor x, Tensor cos, Tensor sin) => x * cos + RotaryEmbedding.RotateHalf(x) * sin;

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var (x, cos, sin) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
        ctx.save_for_backward([cos, sin]);
        // The composite's ops, the second product and the sum in place on fresh temporaries: the same values.
        var rotated = RotaryEmbedding.RotateHalf(x).mul_(sin);
        return (x * cos).add_(rotated);
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        Tensor gradX;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var (cos, sin) = (saved[0], saved[1]);
            // y₁ = x₁c₁ − x₂s₁, y₂ = x₂c₂ + x₁s₂ (halves of the last dimension), so
            // ∂x₁ = g₁c₁ + g₂s₂ and ∂x₂ = g₂c₂ − g₁s₁: one full pass and two half-width multiply-adds in place.
            var half = grad.shape[^1] / 2;
            gradX = grad * cos;
            gradX.narrow(-1, 0, half).addcmul_(grad.narrow(-1, half, half), sin.narrow(-1, half, half), 1);
            gradX.narrow(-1, half, half).addcmul_(grad.narrow(-1, 0, half), sin.narrow(-1, 0, half), -1);
            gradX.DetachFromDisposeScope();
        }

        grad.Dispose();
        return PendingGradients.Return(gradX, null, null);
    }
}
