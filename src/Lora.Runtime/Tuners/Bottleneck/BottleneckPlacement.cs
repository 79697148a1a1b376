namespace Lora.Tuners.Bottleneck;

/// <summary>Where bottleneck adapters go in each decoder block, and how they see the sublayer (AdapterHub's configs).</summary>
public enum BottleneckPlacement
{
    /// <summary>Pfeiffer et al. 2020 (AdapterHub's <c>SeqBnConfig</c>, "seq_bn"): after the MLP only, on the residual
    /// stream: <c>y = h + s + f(h + s)</c> (<c>original_ln_before: true</c>).</summary>
    Pfeiffer,

    /// <summary>Houlsby et al. 2019 (AdapterHub's <c>DoubleSeqBnConfig</c>, "double_seq_bn"): after the attention and
    /// after the MLP, on the sublayer output: <c>y = x + s + f(s)</c> (<c>original_ln_before: false</c>).</summary>
    Houlsby,
}
