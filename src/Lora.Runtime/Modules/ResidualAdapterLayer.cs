using Lora.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Modules;

/// <summary>
/// One of a decoder block's two adapter slots, at AdapterHub's names and places (<c>models/llama/mixin_llama.py</c>,
/// <c>models/gpt2/mixin_gpt2.py</c>: <c>attention_adapters = BottleneckLayer("mh_adapter")</c> after the attention,
/// <c>output_adapters = BottleneckLayer("output_adapter")</c> after the MLP): it joins a sublayer's output to the
/// residual stream, <c>x + s</c>, through the active adapter when there is one (<see cref="ResidualAdapter"/>).
/// Adapters live under <c>adapters.{name}</c>, so their parameter names are AdapterHub's state-dict keys
/// (<c>model.layers.0.output_adapters.adapters.{name}.adapter_down.0.weight</c>). No parameters of its own.
/// </summary>
public sealed class ResidualAdapterLayer : AdapterHost<ResidualAdapter>
{
    /// <summary>AdapterHub's module name of the slot after the attention.</summary>
    public const string AttentionSlot = "attention_adapters";

    /// <summary>AdapterHub's module name of the slot after the MLP.</summary>
    public const string OutputSlot = "output_adapters";

    /// <param name="location">AdapterHub's location key: <c>mh_adapter</c> or <c>output_adapter</c>.</param>
    public ResidualAdapterLayer(string location)
        : base(nameof(ResidualAdapterLayer))
    {
        Location = location;
    }

    /// <summary><c>mh_adapter</c> (after the attention) or <c>output_adapter</c> (after the MLP).</summary>
    public string Location { get; }

    /// <summary><c>x + s</c>, or what the active adapter makes of them.</summary>
    public Tensor Forward(Tensor output, Tensor residual)
    {
        if (!AdaptersApply)
            return output + residual;
        var active = UnmergedActiveAdapters.ToList();
        return active.Count == 1 ? active[0].Apply(output, residual)
            : throw new LoraException($"{active.Count} adapters are active on a block slot ({string.Join(", ", ActiveAdapters)}); activate one (stacking bottleneck adapters is not supported).");
    }

    public override Tensor forward(Tensor input) =>
        throw new NotSupportedException("a block slot joins a sublayer output to the residual stream: call Forward(output, residual).");

    protected override void MergeOne(ResidualAdapter adapter, bool safe) =>
        throw new LoraException($"a {adapter.MethodName} is non-linear (down projection, activation, up projection): it cannot be merged into the weights (AdapterHub cannot either); keep it as an adapter.");

    protected override void UnmergeOne(ResidualAdapter adapter)
    {
    }
}
