using Lora.Modules;
using Lora.Peft;

namespace Lora.Tuners.Bottleneck;

/// <summary>
/// A bottleneck adapter's configuration: AdapterHub's <c>BnConfig</c> (<c>configuration/adapter_config.py</c>) for the
/// sequential adapters this runtime implements — <see cref="BottleneckConfig.Pfeiffer"/> (<c>SeqBnConfig</c>) and
/// <see cref="BottleneckConfig.Houlsby"/> (<c>DoubleSeqBnConfig</c>), or any mix of their switches. PEFT has no
/// bottleneck adapters; files are AdapterHub's (<see cref="AdapterHubFormat"/>), so the config carries AdapterHub's
/// fields. The slots adapted (<see cref="TunerConfig.TargetModules"/>) follow from <see cref="MhAdapter"/> and
/// <see cref="OutputAdapter"/>.
/// </summary>
public sealed record BottleneckConfig : TunerConfig
{
    public override string PeftType => BottleneckMethod.PeftTypeName;

    /// <summary><c>mh_adapter</c>: an adapter after each block's attention.</summary>
    public bool MhAdapter { get; init; }

    /// <summary><c>output_adapter</c>: an adapter after each block's MLP.</summary>
    public bool OutputAdapter { get; init; } = true;

    /// <summary>The bottleneck width <c>d</c> (down projection <c>C → d</c>); the saved <c>reduction_factor</c> is
    /// <c>C / d</c>. Give this or <see cref="ReductionFactor"/>.</summary>
    public int? Size { get; init; }

    /// <summary><c>reduction_factor</c>: <c>d = floor(C / reduction_factor)</c> (AdapterHub's default 16).</summary>
    public double? ReductionFactor { get; init; }

    /// <summary><c>non_linearity</c>: relu, swish (= silu), gelu, gelu_new, tanh, sigmoid or leakyrelu (transformers'
    /// <c>ACT2FN</c> names).</summary>
    public string NonLinearity { get; init; } = "relu";

    /// <summary><c>original_ln_before</c>: the adapter reads the residual stream after the sublayer's sum
    /// (<c>x + s</c>, Pfeiffer) rather than the sublayer output <c>s</c> (Houlsby).</summary>
    public bool OriginalLnBefore { get; init; } = true;

    /// <summary><c>scaling</c>: the adapter's output is multiplied by it (a constant; AdapterHub's learned scalings
    /// are not supported).</summary>
    public double Scaling { get; init; } = 1.0;

    /// <summary><c>dropout</c> on the adapter's output while training.</summary>
    public double Dropout { get; init; }

    /// <summary><c>init_weights</c>: <c>mam_adapter</c> (here the default: down Kaiming-uniform, up projection 0, so
    /// a new adapter leaves the model unchanged), <c>bert</c> (AdapterHub's default: N(0, 0.02²), biases 0) or
    /// <c>houlsby</c> (truncated N(0, 0.01²)).</summary>
    public string InitWeights { get; init; } = BottleneckInit.MamAdapter;

    /// <summary><c>leave_out</c>: decoder layers (0-based) that get no adapter.</summary>
    public IReadOnlyList<int> LeaveOut { get; init; } = [];

    /// <summary>The adapter's name in AdapterHub's file (<c>name</c>, and in every key); null: the name it is saved under.</summary>
    public string? Name { get; init; }

    /// <summary>The file's <c>model_type</c> (read, for checks; written from the model).</summary>
    public string? ModelType { get; init; }

    /// <summary>The file's <c>version</c> stamp (read only).</summary>
    public string? HubVersion { get; init; }

    /// <summary>The model's hidden size, set when the adapter is injected (typed injection passes it through
    /// <see cref="PeftInjector.Prepare"/>).</summary>
    internal int? Hidden { get; init; }

    /// <summary>Where new adapters are created (the model's device), set with <see cref="Hidden"/>.</summary>
    internal TorchSharp.torch.Device? Device { get; init; }

    /// <summary>AdapterHub's <c>SeqBnConfig</c> (Pfeiffer et al. 2020): after the MLP, ReLU, reduction factor 16.</summary>
    public static BottleneckConfig Pfeiffer(int? size = null, double? reductionFactor = null, string nonLinearity = "relu") => new()
    {
        MhAdapter = false,
        OutputAdapter = true,
        OriginalLnBefore = true,
        NonLinearity = nonLinearity,
        Size = size,
        ReductionFactor = size is null ? reductionFactor ?? 16 : null,
    };

    /// <summary>AdapterHub's <c>DoubleSeqBnConfig</c> (Houlsby et al. 2019): after the attention and the MLP, swish,
    /// reduction factor 16.</summary>
    public static BottleneckConfig Houlsby(int? size = null, double? reductionFactor = null, string nonLinearity = "swish") => new()
    {
        MhAdapter = true,
        OutputAdapter = true,
        OriginalLnBefore = false,
        NonLinearity = nonLinearity,
        Size = size,
        ReductionFactor = size is null ? reductionFactor ?? 16 : null,
    };

    /// <summary>The preset of <paramref name="placement"/>.</summary>
    public static BottleneckConfig For(BottleneckPlacement placement, int? size = null, double? reductionFactor = null, string? nonLinearity = null) => placement switch
    {
        BottleneckPlacement.Houlsby => Houlsby(size, reductionFactor, nonLinearity ?? "swish"),
        _ => Pfeiffer(size, reductionFactor, nonLinearity ?? "relu"),
    };

    /// <summary>The slots <see cref="MhAdapter"/> and <see cref="OutputAdapter"/> select.</summary>
    public IReadOnlyList<string> Slots =>
        [.. MhAdapter ? [ResidualAdapterLayer.AttentionSlot] : Array.Empty<string>(), .. OutputAdapter ? [ResidualAdapterLayer.OutputSlot] : Array.Empty<string>()];

    /// <summary>A layer in <see cref="LeaveOut"/> gets no adapter.</summary>
    protected override bool IncludesLayer(string path) =>
        LeaveOut.Count == 0 || LayerSelection.LayerIndex(path, []) is not { } i || !LeaveOut.Contains(i);
}

/// <summary>AdapterHub's <c>init_weights</c> values.</summary>
public static class BottleneckInit
{
    public const string MamAdapter = "mam_adapter";
    public const string Bert = "bert";
    public const string Houlsby = "houlsby";

    public static IReadOnlyList<string> All { get; } = [MamAdapter, Bert, Houlsby];
}
