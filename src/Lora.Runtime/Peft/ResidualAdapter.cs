using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// An adapter at the output of a decoder block's sublayer (attention or MLP), where AdapterHub's bottleneck adapters
/// sit (<c>methods/bottleneck.py</c>, <c>BottleneckLayer</c>): given the sublayer's output <c>s</c> and the block's
/// residual input <c>x</c>, it returns the new residual stream — <c>x + s</c> without an adapter. Hosted by
/// <see cref="Modules.ResidualAdapterLayer"/>, the two slots every built-in decoder block has.
/// </summary>
public abstract class ResidualAdapter : nn.Module
{
    protected ResidualAdapter(string name)
        : base(name)
    {
    }

    /// <summary>The method's name, for display.</summary>
    public abstract string MethodName { get; }

    /// <summary>The residual stream after the sublayer with this adapter: from <paramref name="output"/> <c>s</c>
    /// and <paramref name="residual"/> <c>x</c>, both <c>(B, T, C)</c> in the model's dtype; same shape and dtype.</summary>
    public abstract Tensor Apply(Tensor output, Tensor residual);
}
