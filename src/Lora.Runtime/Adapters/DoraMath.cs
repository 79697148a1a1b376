using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Adapters;

/// <summary>
/// DoRA (weight-decomposed LoRA), as PEFT computes it (<c>tuners/lora/dora.py</c>). With W <c>[out, in]</c>,
/// ΔW = s·B@A and a trainable magnitude m <c>[out]</c>:
/// <code>
///   ‖W + ΔW‖         row-wise L2 norm (dim 1), computed from a detached ΔW and then detached itself
///   forward:          y = base(x) + (m/‖·‖ − 1)·(base(x) − b) + (m/‖·‖)·B(A(x))·s
///   merge:            W' = (m/‖W + ΔW‖) ⊙ (W + ΔW)       (row scaling)
///   init:             m₀ = ‖W + ΔW‖, so a new DoRA adapter starts as plain LoRA.
/// </code>
/// </summary>
public static class DoraMath
{
    /// <summary>‖W + ΔW‖ per output row, <c>[out]</c>.</summary>
    public static Tensor WeightNorm(Tensor weightOutIn, Tensor deltaOutIn)
    {
        using var scope = NewDisposeScope();
        return (weightOutIn + deltaOutIn).to(ScalarType.Float32).norm(1, keepdim: false).to(weightOutIn.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The DoRA contribution added to base(x) (bias included).</summary>
    /// <param name="baseWithoutBias">base(x) − b for the same input the adapter sees.</param>
    /// <param name="loraOut">B(A(dropout(x)))·s.</param>
    /// <param name="magnitude">m <c>[out]</c>.</param>
    /// <param name="norm">‖W + ΔW‖ (detached) <c>[out]</c>.</param>
    public static Tensor Term(Tensor baseWithoutBias, Tensor loraOut, Tensor magnitude, Tensor norm)
    {
        using var scope = NewDisposeScope();
        var scale = (magnitude / norm).view(1, -1);
        var result = (scale - 1) * baseWithoutBias + scale * loraOut;
        return result.MoveToOuterDisposeScope();
    }
}
