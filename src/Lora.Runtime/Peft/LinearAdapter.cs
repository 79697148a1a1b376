using Lora.Modules.Bases;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// One named adapter of a linear layer, of any PEFT method: how it changes the layer's map, and how it folds into the
/// weight. For the active, unmerged adapters <c>a₁ … aₙ</c> of a layer with base map <c>base</c>, the layer computes
/// <code>
///   h = aₙ.AdaptInput(… a₁.AdaptInput(x))          IA3 on a feed-forward layer scales the input here
///   y = base(h)
///   y = aₙ.AdaptOutput(x, … a₁.AdaptOutput(x, y))  LoRA adds B·A·x·s, DoRA rescales, IA3 scales the output
/// </code>
/// Adapters see the base only through <see cref="LinearBase"/> (forward, dense <c>(out, in)</c> weight, weight write),
/// so they work over every base-layer kind.
/// </summary>
public abstract class LinearAdapter : nn.Module
{
    protected LinearAdapter(string name)
        : base(name)
    {
    }

    /// <summary>The PEFT method's name, for display (<c>LoRA</c>, <c>IA3</c>).</summary>
    public abstract string MethodName { get; }

    /// <summary>The input the base map sees; unchanged by default.</summary>
    public virtual Tensor AdaptInput(Tensor x) => x;

    /// <summary>The layer output with this adapter applied, from the layer input <paramref name="x"/> and the output
    /// so far <paramref name="y"/> (same dtype as <paramref name="y"/>).</summary>
    public abstract Tensor AdaptOutput(LinearBase layer, Tensor x, Tensor y);

    /// <summary>Folds the update into <paramref name="layer"/>'s weight (and bias). With <paramref name="safe"/>, the
    /// new values are computed aside and a <see cref="LoraException"/> is thrown, nothing written, if they are not
    /// finite. Runs under no_grad in a dispose scope.</summary>
    public abstract void Merge(LinearBase layer, bool safe);

    /// <summary>Reverses <see cref="Merge"/> (exact up to rounding, or as exact as the method allows).</summary>
    public abstract void Unmerge(LinearBase layer);

    /// <summary>The adapter was removed from its layer: drop any state kept for unmerging.</summary>
    public virtual void OnRemoved()
    {
    }

    /// <summary>Writes a merge's result: with <paramref name="safe"/>, first refuses (writing nothing) a weight or bias
    /// that is not finite, as PEFT's <c>safe_merge</c> does.</summary>
    /// <param name="layer">The base to write to.</param>
    /// <param name="weight">The new <c>(out, in)</c> weight.</param>
    /// <param name="bias">The new bias, or null to leave it.</param>
    /// <param name="safe">Check for NaN/Inf first.</param>
    protected internal static void WriteMerged(LinearBase layer, Tensor weight, Tensor? bias, bool safe)
    {
        if (safe && (!weight.isfinite().all().item<bool>() || (bias is not null && !bias.isfinite().all().item<bool>())))
            throw new LoraException("merging would put NaN or Inf into the weights; the adapter is broken, nothing was merged.");
        layer.WriteWeight(weight);
        if (bias is not null)
            layer.Bias!.copy_(bias);
    }
}
