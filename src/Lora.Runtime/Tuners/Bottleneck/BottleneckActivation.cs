using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Tuners.Bottleneck;

/// <summary>
/// The bottleneck's non-linearity by AdapterHub's name (<c>Activation_Function_Class</c> in <c>methods/modeling.py</c>:
/// transformers' <c>get_activation</c>, plus <c>leakyrelu</c>). A module without parameters, at index 1 of
/// <c>adapter_down</c>.
/// </summary>
public sealed class BottleneckActivation : nn.Module<Tensor, Tensor>
{
    /// <summary>The names understood (lower case).</summary>
    public static IReadOnlyList<string> Names { get; } = ["relu", "swish", "silu", "gelu", "gelu_new", "tanh", "sigmoid", "leakyrelu"];

    public BottleneckActivation(string name)
        : base(nameof(BottleneckActivation))
    {
        Name = name.ToLowerInvariant();
        if (!Names.Contains(Name))
            throw new LoraException($"bottleneck adapter: non_linearity \"{name}\" is not one of {string.Join(", ", Names)}.");
    }

    /// <summary>The activation's name as AdapterHub writes it.</summary>
    public string Name { get; }

    public override Tensor forward(Tensor x) => Name switch
    {
        "relu" => nn.functional.relu(x),
        "swish" or "silu" => nn.functional.silu(x),
        "gelu" => nn.functional.gelu(x),
        "gelu_new" => GeluNew(x),
        "tanh" => x.tanh(),
        "sigmoid" => x.sigmoid(),
        _ => nn.functional.leaky_relu(x),
    };

    /// <summary>transformers' <c>NewGELUActivation</c>: <c>0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))</c>.</summary>
    private static Tensor GeluNew(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = (x + x.pow(3) * 0.044715) * Math.Sqrt(2.0 / Math.PI);
        return (x * 0.5 * (inner.tanh() + 1.0)).MoveToOuterDisposeScope();
    }
}
