using Lora.Kernels;
using Lora.Modules;
using Lora.Modules.Bases;
using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Tuners.LoRA;

/// <summary>
/// One named LoRA adapter of one linear layer (PEFT's <c>lora.Linear</c>, <c>tuners/lora/layer.py</c>): the low-rank update
/// <code>
///   y = base(x) + B · A · dropout(x) · s    A: [r, in]   B: [out, r]   s = α / r  (rsLoRA: α / √r)
///   ΔW = s · B @ A                           [out, in], whatever the base's storage
/// </code>
/// with x cast to the adapter's dtype, the sum taken there and the result cast back to the base's (C8; PEFT's
/// <c>lora.Linear.forward</c> casts <c>result</c> back after the sum). A <see cref="Variant"/> (DoRA) replaces
/// the forward and merge, as PEFT's <c>LoraVariant</c> does. Parameter names are PEFT's key suffixes
/// (<c>lora_A.weight</c>, <c>lora_B.weight</c>, <c>lora_B.bias</c>, <c>lora_magnitude_vector</c>), so a layer at
/// path P saves them as <c>base_model.model.P.lora_A.weight</c>.
/// </summary>
public sealed class LoraAdapter : LinearAdapter
{
    [ComponentName(Name = "lora_A")]
    public readonly Linear LoraA;

    [ComponentName(Name = "lora_B")]
    public readonly Linear LoraB;

    [ComponentName(Name = "lora_dropout")]
    private readonly nn.Module<Tensor, Tensor> _dropout;

    /// <summary>DoRA magnitude m <c>[out]</c> (null without DoRA).</summary>
    [ComponentName(Name = "lora_magnitude_vector")]
    public Parameter? Magnitude;

    public LoraAdapter(long inFeatures, long outFeatures, int rank, double alpha, bool useRsLora = false, double dropout = 0,
        bool loraBias = false, LoraInit init = LoraInit.Default, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LoraAdapter))
    {
        if (rank <= 0)
            throw new LoraException($"LoRA rank must be > 0 (got {rank}).");
        if (dropout is < 0 or >= 1)
            throw new LoraException($"LoRA dropout must be in [0, 1) (got {dropout}).");
        Rank = rank;
        Alpha = alpha;
        Scaling = useRsLora ? alpha / Math.Sqrt(rank) : alpha / rank;
        LoraA = nn.Linear(inFeatures, rank, hasBias: false, device: device, dtype: dtype);
        LoraB = nn.Linear(rank, outFeatures, hasBias: loraBias, device: device, dtype: dtype);
        _dropout = dropout > 0 ? nn.Dropout(dropout) : nn.Identity();
        DropoutP = dropout;
        RegisterComponents();
        Initialize(init);
    }

    public int Rank { get; }

    public double Alpha { get; }

    /// <summary>s: α/r, or α/√r with rsLoRA.</summary>
    public double Scaling { get; }

    public double DropoutP { get; }

    /// <summary>The variant replacing plain LoRA's forward and merge (DoRA), or null.</summary>
    public DoraVariant? Variant { get; private set; }

    public bool UseDora => Variant is not null;

    /// <summary>The adapter's dtype (its factors').</summary>
    public ScalarType DType => LoraA.weight!.dtype;

    public void Initialize(LoraInit init)
    {
        using var noGrad = no_grad();
        switch (init)
        {
            case LoraInit.Default:
                nn.init.kaiming_uniform_(LoraA.weight, a: Math.Sqrt(5));
                nn.init.zeros_(LoraB.weight);
                break;
            case LoraInit.Gaussian:
                nn.init.normal_(LoraA.weight, 0, 1.0 / Rank);
                nn.init.zeros_(LoraB.weight);
                break;
            default:
                nn.init.kaiming_uniform_(LoraA.weight, a: Math.Sqrt(5));
                nn.init.kaiming_uniform_(LoraB.weight, a: Math.Sqrt(5));
                break;
        }

        if (LoraB.bias is { } bias)
            nn.init.zeros_(bias);
    }

    /// <summary>Turns this adapter into DoRA over <paramref name="layer"/>: m₀ = ‖W + ΔW‖, so the output is unchanged.</summary>
    public void EnableDora(LinearBase layer)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var norm = DoraVariant.WeightNorm(layer.Weight(), DeltaWeight().to(layer.DType));
        Magnitude = new Parameter(norm.to(DType).detach().clone().DetachFromDisposeScope());
        register_parameter("lora_magnitude_vector", Magnitude);
        Variant = new DoraVariant();
    }

    /// <summary>Δy = B(A(dropout(x)))·s, in the adapter's dtype.</summary>
    public Tensor Delta(Tensor x)
    {
        using var scope = NewDisposeScope();
        return (LoraB.call(LoraA.call(Dropout(SharedAdapterInput.Cast(x, DType)))) * Scaling).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>y + B(A(dropout(x)))·s</c> as PEFT's <c>lora.Linear.forward</c> computes it (<c>result = result +
    /// lora_B(lora_A(dropout(x))) * scaling</c> in the adapter's dtype, then <c>result.to(torch_result_dtype)</c>), with
    /// the scaling and the sum folded into one matrix multiply-accumulate (<c>addmm(y, A x, Bᵀ, α = s)</c>): no
    /// separate Δy, scaled Δy or cast Δy of the output's size, forward or backward. The input is cast once per block
    /// (<see cref="SharedAdapterInput"/>). A lora_B bias takes the plain path.
    /// </summary>
    private Tensor AddScaledDelta(Tensor x, Tensor y)
    {
        if (!FusedKernels.Enabled || LoraB.bias is not null)
            return y + Delta(x).to(y.dtype);
        using var scope = NewDisposeScope();
        var xa = LoraA.call(Dropout(SharedAdapterInput.Cast(x, DType)));   // (…, r)
        var accumulator = y.dtype == DType ? y : y.to(DType);               // (…, out)
        var sum = addmm(accumulator.reshape(-1, accumulator.shape[^1]), xa.reshape(-1, Rank), LoraB.weight!.t(), 1, (float)Scaling);
        var result = sum.view(y.shape);
        return (result.dtype == y.dtype ? result : result.to(y.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>The adapter's dropout on an input already in its dtype.</summary>
    public Tensor Dropout(Tensor x) => _dropout.call(x);

    /// <summary>ΔW = s·B@A as <c>[out, in]</c>. A lora_B bias is not part of ΔW.</summary>
    public Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        return (LoraB.weight!.matmul(LoraA.weight!) * Scaling).MoveToOuterDisposeScope();
    }

    public override string MethodName => "LoRA";

    public override Tensor AdaptOutput(LinearBase layer, Tensor x, Tensor y) =>
        Variant is { } variant ? variant.Forward(this, layer, x, y) : AddScaledDelta(x, y);

    /// <summary>W ← W + ΔW (DoRA: see <see cref="DoraVariant"/>); a lora_B bias goes into the bias.</summary>
    public override void Merge(LinearBase layer, bool safe)
    {
        if (Variant is { } variant)
        {
            variant.Merge(this, layer, safe);
            return;
        }

        WriteMerged(layer, layer.Weight() + DeltaWeight().to(layer.DType), MergedBias(layer, +1), safe);
    }

    public override void Unmerge(LinearBase layer)
    {
        if (Variant is { } variant)
        {
            variant.Unmerge(this, layer);
            return;
        }

        layer.WriteWeight(layer.Weight() - DeltaWeight().to(layer.DType));
        if (MergedBias(layer, -1) is { } bias)
            layer.Bias!.copy_(bias);
    }

    public override void OnRemoved() => Variant?.Dispose();

    /// <summary>The base bias with the lora_B bias added (<paramref name="sign"/> +1) or taken out (−1), or null.</summary>
    internal Tensor? MergedBias(LinearBase layer, int sign) =>
        LoraB.bias is { } loraBias && layer.Bias is { } bias ? bias + loraBias.to(bias.dtype) * (sign * Scaling) : null;
}
