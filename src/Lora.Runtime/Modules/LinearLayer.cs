using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Modules;

/// <summary>
/// Hugging Face <c>nn.Linear</c>: <c>y = x Wᵀ + b</c> with <c>weight</c> <c>(out, in)</c> and optional <c>bias</c>
/// <c>(out)</c>. Also the base of GPT-2's <see cref="Conv1D"/>, which stores the same map as <c>(in, out)</c>
/// (<see cref="FanInFanOut"/>), so that one adapter implementation serves both: adapters read
/// <see cref="InFeatures"/>/<see cref="OutFeatures"/> and <see cref="WeightOutIn"/>, never the raw storage.
/// </summary>
public class LinearLayer : nn.Module<Tensor, Tensor>
{
    /// <summary><c>(out, in)</c>, or <c>(in, out)</c> when <see cref="FanInFanOut"/>.</summary>
    [ComponentName(Name = "weight")]
    public Parameter Weight;

    /// <summary><c>(out)</c>, or null for a layer without bias.</summary>
    [ComponentName(Name = "bias")]
    public Parameter? Bias;

    /// <summary>A layer with uninitialised weights (fill them with a checkpoint or <c>InitializeWeights</c>).</summary>
    public LinearLayer(long inFeatures, long outFeatures, bool hasBias = true, ScalarType dtype = ScalarType.Float32, torch.Device? device = null)
        : this(nameof(LinearLayer), inFeatures, outFeatures, hasBias, fanInFanOut: false, dtype, device)
    {
    }

    /// <summary>A layer over an existing <c>(out, in)</c> weight, shared not copied (tied <c>lm_head</c>).</summary>
    public LinearLayer(Parameter weight, Parameter? bias = null)
        : base(nameof(LinearLayer))
    {
        if (weight.ndim != 2)
            throw new ArgumentException($"weight must be (out, in), got ({string.Join(", ", weight.shape)}).", nameof(weight));
        OutFeatures = weight.shape[0];
        InFeatures = weight.shape[1];
        Weight = weight;
        Bias = bias;
        RegisterComponents();
    }

    protected LinearLayer(string name, long inFeatures, long outFeatures, bool hasBias, bool fanInFanOut, ScalarType dtype, torch.Device? device)
        : base(name)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        FanInFanOut = fanInFanOut;
        long[] shape = fanInFanOut ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
        Weight = new Parameter(empty(shape, dtype, device));
        Bias = hasBias ? new Parameter(empty([outFeatures], dtype, device)) : null;
        RegisterComponents();
    }

    public long InFeatures { get; }

    public long OutFeatures { get; }

    /// <summary>True when <see cref="Weight"/> is stored <c>(in, out)</c> (GPT-2 <c>Conv1D</c>, PEFT's
    /// <c>fan_in_fan_out</c>); the map is the same <c>in → out</c> either way.</summary>
    public bool FanInFanOut { get; }

    /// <summary>The weight as <c>(out, in)</c> whatever the storage: the parameter itself, or a transposed view.</summary>
    public Tensor WeightOutIn() => FanInFanOut ? Weight.t() : Weight.alias();

    /// <summary><c>x (…, in) → (…, out)</c>.</summary>
    public override Tensor forward(Tensor x)
    {
        if (!FanInFanOut)
            return nn.functional.linear(x, Weight, Bias);

        // Conv1D, as transformers computes it: addmm(b, x (N, in), W (in, out)) → (N, out), viewed back to (…, out).
        using var scope = NewDisposeScope();
        long[] outShape = [.. x.shape[..^1], OutFeatures];
        var flat = x.reshape(-1, InFeatures);
        var y = Bias is null ? flat.matmul(Weight) : addmm(Bias, flat, Weight, 1, 1);
        return y.view(outShape).MoveToOuterDisposeScope();
    }
}
