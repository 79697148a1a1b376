using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Adapters;

/// <summary>
/// One named LoRA adapter of one linear layer: the low-rank update
/// <code>
///   Δy = B · A · dropout(x) · s        A: [r, in]   B: [out, r]   s = α / r  (rsLoRA: α / √r)
///   ΔW = s · B @ A                     ([out, in]; stored transposed for fan_in_fan_out layers)
/// </code>
/// Parameter names inside it are PEFT's key suffixes (<c>lora_A.weight</c>, <c>lora_B.weight</c>,
/// <c>lora_B.bias</c>, <c>lora_magnitude_vector</c>), so a host layer at path P saves them as
/// <c>base_model.model.P.lora_A.weight</c>. The host (the linear layer) applies it; DoRA's magnitude also lives here.
/// </summary>
public sealed class LoraAdapter : nn.Module<Tensor, Tensor>
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

    public bool UseDora => Magnitude is not null;

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

    /// <summary>Δy = B(A(dropout(x)))·s, computed in the adapter's dtype.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var input = x.dtype == LoraA.weight!.dtype ? x : x.to(LoraA.weight.dtype);
        return (LoraB.call(LoraA.call(_dropout.call(input))) * Scaling).MoveToOuterDisposeScope();
    }

    /// <summary>A(dropout(x)) and the B product without dropout, for hosts that need them separately (DoRA).</summary>
    internal Tensor Dropout(Tensor x) => _dropout.call(x);

    /// <summary>ΔW = s·B@A as <c>[out, in]</c> (the caller transposes for fan_in_fan_out storage). A lora_B bias is
    /// not part of ΔW.</summary>
    public Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        return (LoraB.weight!.matmul(LoraA.weight!) * Scaling).MoveToOuterDisposeScope();
    }
}
