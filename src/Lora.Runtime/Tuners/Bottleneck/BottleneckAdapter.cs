using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Tuners.Bottleneck;

/// <summary>
/// A sequential bottleneck adapter, AdapterHub's <c>Adapter</c> (<c>methods/modeling.py</c>) as
/// <c>BottleneckLayer.bottleneck_layer_forward</c> runs it in a Llama/GPT-2 block (no layer norm passed, one adapter):
/// <code>
///   u = s + x  if original_ln_before (Pfeiffer)  else  s (Houlsby)          pre_forward
///   f(u) = scaling · adapter_up(act(adapter_down(u)))                        forward (dropout on f while training)
///   y = x + s + f(u)                                                          forward's residual (s) + post_forward (x)
/// </code>
/// with <c>adapter_down = Sequential(Linear(C, d), act)</c> and <c>adapter_up = Linear(d, C)</c>: AdapterHub's module
/// and key names. Weights are fp32; inputs are cast to them and the result back, like the other adapters here.
/// </summary>
public sealed class BottleneckAdapter : ResidualAdapter
{
    [ComponentName(Name = "adapter_down")]
    public Sequential AdapterDown;

    [ComponentName(Name = "adapter_up")]
    public Linear AdapterUp;

    private readonly Dropout _dropout;

    public BottleneckAdapter(int hidden, int size, string nonLinearity, bool originalLnBefore, double scaling, double dropout, string init, torch.Device? device = null)
        : base(nameof(BottleneckAdapter))
    {
        Hidden = hidden;
        Size = size;
        OriginalLnBefore = originalLnBefore;
        Scaling = scaling;
        var down = nn.Linear(hidden, size, device: device);
        Activation = new BottleneckActivation(nonLinearity);
        AdapterDown = nn.Sequential(("0", down), ("1", Activation));
        AdapterUp = nn.Linear(size, hidden, device: device);
        _dropout = nn.Dropout(dropout);
        Initialize(down, AdapterUp, init);
        RegisterComponents();
    }

    public int Hidden { get; }

    /// <summary>The bottleneck width <c>d</c>.</summary>
    public int Size { get; }

    public bool OriginalLnBefore { get; }

    public double Scaling { get; }

    public BottleneckActivation Activation { get; }

    public override string MethodName => "bottleneck adapter";

    public override Tensor Apply(Tensor output, Tensor residual)
    {
        using var scope = NewDisposeScope();
        var dtype = AdapterUp.weight!.dtype;
        var u = OriginalLnBefore ? output + residual : output;
        var f = AdapterUp.call(AdapterDown.call(u.to(dtype)));
        if (Scaling != 1.0)
            f = f * Scaling;
        f = _dropout.call(f);
        return (output + residual + f.to(output.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>AdapterHub's <c>init_weights</c> (<c>Adapter.__init__</c>).</summary>
    private static void Initialize(Linear down, Linear up, string init)
    {
        using var noGrad = no_grad();
        switch (init)
        {
            case BottleneckInit.MamAdapter:
                nn.init.kaiming_uniform_(down.weight!, Math.Sqrt(5));
                down.bias!.zero_();
                up.weight!.zero_();
                up.bias!.zero_();
                break;
            case BottleneckInit.Bert:
                down.weight!.normal_(0, 0.02);
                up.weight!.normal_(0, 0.02);
                down.bias!.zero_();
                up.bias!.zero_();
                break;
            case BottleneckInit.Houlsby:
                nn.init.trunc_normal_(down.weight!, 0, 1e-2, -2e-2, 2e-2);
                nn.init.trunc_normal_(up.weight!, 0, 1e-2, -2e-2, 2e-2);
                down.bias!.zero_();
                up.bias!.zero_();
                break;
            default:
                throw new LoraException($"bottleneck adapter: init_weights \"{init}\" is not one of {string.Join(", ", BottleneckInit.All)}.");
        }
    }
}
