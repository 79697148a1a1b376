using Lora.Modules;
using Lora.Modules.Bases;
using Lora.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Tuners.LoRA;

/// <summary>
/// DoRA (weight-decomposed LoRA) as a LoRA variant, as PEFT computes it (<c>tuners/lora/variants.py</c>
/// <c>DoraLinearVariant</c>, <c>tuners/lora/dora.py</c>). With W <c>[out, in]</c>, ΔW = s·B@A and a trainable
/// magnitude m <c>[out]</c> (<c>lora_magnitude_vector</c>):
/// <code>
///   ‖W + ΔW‖         row-wise L2 norm (dim 1), computed from a detached ΔW and then detached itself
///   forward:          y = base(x) + (m/‖·‖ − 1)·(base(x) − b) + (m/‖·‖)·B(A(x))·s
///   merge:            W' = (m/‖W + ΔW‖) ⊙ (W + ΔW)       (row scaling; the norm is kept to unmerge)
///   init:             m₀ = ‖W + ΔW‖, so a new DoRA adapter starts as plain LoRA.
/// </code>
/// With active dropout the base map is recomputed on the dropped input, as PEFT does.
/// </summary>
public sealed class DoraVariant : IDisposable
{
    private Tensor? _mergedNorm;

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

    internal Tensor Forward(LoraAdapter adapter, LinearBase layer, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        var dropped = adapter.Dropout(SharedAdapterInput.Cast(x, adapter.DType));
        var loraOut = adapter.LoraB.call(adapter.LoraA.call(dropped)) * adapter.Scaling;
        var baseWithoutBias = adapter.DropoutP > 0 && adapter.training
            ? layer.ForwardWithoutBias(dropped.to(layer.DType))
            : layer.Bias is null ? y : y - layer.Bias;
        Tensor norm;
        using (no_grad())
            norm = WeightNorm(layer.Weight(), adapter.DeltaWeight().to(layer.DType)).detach();
        return (y + Term(baseWithoutBias, loraOut.to(y.dtype), adapter.Magnitude!.to(y.dtype), norm)).MoveToOuterDisposeScope();
    }

    internal void Merge(LoraAdapter adapter, LinearBase layer, bool safe)
    {
        var delta = adapter.DeltaWeight().to(layer.DType);
        var weight = layer.Weight();
        var norm = WeightNorm(weight, delta).detach();
        var merged = (adapter.Magnitude!.to(layer.DType) / norm).view(-1, 1) * (weight + delta);
        LinearAdapter.WriteMerged(layer, merged, adapter.MergedBias(layer, +1), safe);
        _mergedNorm?.Dispose();
        _mergedNorm = norm.clone().DetachFromDisposeScope();
    }

    internal void Unmerge(LoraAdapter adapter, LinearBase layer)
    {
        var delta = adapter.DeltaWeight().to(layer.DType);
        var weight = layer.Weight();
        var original = _mergedNorm is { } norm
            ? weight / (adapter.Magnitude!.to(layer.DType) / norm).view(-1, 1) - delta
            : weight - delta;
        layer.WriteWeight(original);
        if (adapter.MergedBias(layer, -1) is { } bias)
            layer.Bias!.copy_(bias);
        Dispose();
    }

    public void Dispose()
    {
        _mergedNorm?.Dispose();
        _mergedNorm = null;
    }
}
