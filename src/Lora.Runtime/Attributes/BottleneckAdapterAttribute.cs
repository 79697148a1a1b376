using Lora.Peft;
using Lora.Tuners.Bottleneck;

namespace Lora;

/// <summary>
/// Declares a bottleneck-adapter plan (Houlsby et al. 2019 / Pfeiffer et al. 2020, as AdapterHub builds them): a down
/// projection, a non-linearity and a zero-initialised up projection with a residual, in every decoder block's
/// attention and MLP slots (<see cref="BottleneckPlacement.Houlsby"/>) or the MLP slot only
/// (<see cref="BottleneckPlacement.Pfeiffer"/>, the default). The slots come from <see cref="Placement"/>, so
/// <see cref="AdapterPlanAttribute.Targets"/> is not set (LORA0023); give <see cref="Size"/> or
/// <see cref="ReductionFactor"/> (LORA0024). Saved in AdapterHub's format.
/// <code>
/// [BottleneckAdapter(Size = 64, Placement = BottleneckPlacement.Houlsby)]
/// public partial class LlamaAdapters : LlamaForCausalLM { }
/// </code>
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
[Adapts(typeof(ResidualAdapter))]
public sealed class BottleneckAdapterAttribute : AdapterPlanAttribute
{
    /// <summary>The metadata name the generator and analyzers look the attribute up by.</summary>
    public const string MetadataName = "Lora.BottleneckAdapterAttribute";

    /// <summary>The bottleneck width; 0 = from <see cref="ReductionFactor"/>.</summary>
    public int Size { get; set; }

    /// <summary>AdapterHub's <c>reduction_factor</c> (width = hidden / factor); 0 = 16 unless <see cref="Size"/> is set.</summary>
    public double ReductionFactor { get; set; }

    /// <summary>Which slots, and how the adapter sees the sublayer.</summary>
    public BottleneckPlacement Placement { get; set; } = BottleneckPlacement.Pfeiffer;

    /// <summary>AdapterHub's <c>non_linearity</c> (relu, swish, gelu, gelu_new, tanh, sigmoid, leakyrelu); null: the
    /// placement's (relu for Pfeiffer, swish for Houlsby).</summary>
    public string? NonLinearity { get; set; }

    /// <summary>Dropout on the adapter's output while training, in [0, 1).</summary>
    public double Dropout { get; set; }

    /// <summary>AdapterHub's <c>scaling</c> of the adapter's output.</summary>
    public double Scaling { get; set; } = 1.0;

    public override BottleneckConfig ToConfig() =>
        BottleneckConfig.For(Placement, Size > 0 ? Size : null, ReductionFactor > 0 ? ReductionFactor : null, NonLinearity) with
        {
            Dropout = Dropout,
            Scaling = Scaling,
        };
}
