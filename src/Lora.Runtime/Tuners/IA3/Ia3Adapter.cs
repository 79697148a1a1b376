using Lora.Modules.Bases;
using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Tuners.IA3;

/// <summary>
/// One named IA3 adapter of one linear layer ("(IA)³", PEFT's <c>ia3.Linear</c>, <c>tuners/ia3/layer.py</c>): a learned
/// vector <c>l</c> that rescales the layer,
/// <code>
///   feed-forward:   y = base(x ⊙ l)            l = ia3_l [1, in]     merge: W ← W ⊙ l   (columns)
///   otherwise:      y = base(x) ⊙ l            l = ia3_l [out, 1]    merge: W ← W ⊙ l,  b ← b ⊙ l   (rows)
/// </code>
/// The input (or output) is multiplied in <c>l</c>'s dtype and cast back, as PEFT does. Unmerge divides by
/// <c>l + 1e-8</c> (PEFT's tolerance), so it is exact only up to that. The parameter is named <c>ia3_l</c>, PEFT's key
/// suffix: a layer at path P saves it as <c>base_model.model.P.ia3_l</c>.
/// </summary>
public sealed class Ia3Adapter : LinearAdapter
{
    /// <summary>PEFT's tolerance against division by zero when unmerging.</summary>
    public const double UnmergeEpsilon = 1e-8;

    /// <summary><c>[1, in]</c> for a feed-forward layer, <c>[out, 1]</c> otherwise.</summary>
    [ComponentName(Name = "ia3_l")]
    public Parameter Vector;

    /// <param name="inFeatures">The layer's input features.</param>
    /// <param name="outFeatures">The layer's output features.</param>
    /// <param name="isFeedForward">Scale the input (true) or the output.</param>
    /// <param name="initOnes">PEFT's <c>init_ia3_weights</c>: ones; otherwise N(0, 1).</param>
    /// <param name="device">Where the vector lives (the layer's device).</param>
    public Ia3Adapter(long inFeatures, long outFeatures, bool isFeedForward, bool initOnes = true, Device? device = null)
        : base(nameof(Ia3Adapter))
    {
        IsFeedForward = isFeedForward;
        long[] shape = isFeedForward ? [1, inFeatures] : [outFeatures, 1];
        Vector = new Parameter(initOnes ? ones(shape, device: device) : randn(shape, device: device));
        RegisterComponents();
    }

    /// <summary>True when the vector scales the input.</summary>
    public bool IsFeedForward { get; }

    public override string MethodName => "IA3";

    public override Tensor AdaptInput(Tensor x)
    {
        if (!IsFeedForward)
            return x;
        using var scope = NewDisposeScope();
        return (x.to(Vector.dtype) * Vector.flatten()).to(x.dtype).MoveToOuterDisposeScope();
    }

    public override Tensor AdaptOutput(LinearBase layer, Tensor x, Tensor y)
    {
        if (IsFeedForward)
            return y;
        using var scope = NewDisposeScope();
        return (y * Vector.flatten()).to(y.dtype).MoveToOuterDisposeScope();
    }

    public override void Merge(LinearBase layer, bool safe)
    {
        // Multiplied in the promoted dtype and stored back in the layer's (PEFT: torch.mul(W, l).to(orig_dtype)).
        var newBias = !IsFeedForward && layer.Bias is { } bias ? bias * Vector.reshape(bias.shape) : null;
        WriteMerged(layer, layer.Weight() * Vector, newBias, safe);
    }

    public override void Unmerge(LinearBase layer)
    {
        layer.WriteWeight(layer.Weight() / (Vector + UnmergeEpsilon));
        if (!IsFeedForward && layer.Bias is { } bias)
            bias.copy_(bias / (Vector.reshape(bias.shape) + UnmergeEpsilon));
    }
}
