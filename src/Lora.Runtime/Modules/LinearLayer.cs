using Lora.Adapters;
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
/// <para>
/// It hosts LoRA adapters (<see cref="LoraAdapter"/>, under <c>adapters.{name}</c>): the base weight keeps its
/// checkpoint key, and <c>y = x Wᵀ + b + Σ_active ΔA(x)</c>. Adapters can be disabled, merged into the weight
/// (safely: NaN/Inf refused) and unmerged.
/// </para>
/// </summary>
public class LinearLayer : AdaptableModule<LoraAdapter>
{
    /// <summary><c>(out, in)</c>, or <c>(in, out)</c> when <see cref="FanInFanOut"/>.</summary>
    [ComponentName(Name = "weight")]
    public Parameter Weight;

    /// <summary><c>(out)</c>, or null for a layer without bias.</summary>
    [ComponentName(Name = "bias")]
    public Parameter? Bias;

    private readonly Dictionary<string, Tensor> _mergedDoraNorms = [];

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

    /// <summary>Enables DoRA for adapter <paramref name="name"/>: m₀ = ‖W + ΔW‖ (so the output is unchanged).</summary>
    public void EnableDora(string name)
    {
        var adapter = Adapter(name);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var norm = DoraMath.WeightNorm(WeightOutIn(), adapter.DeltaWeight().to(Weight.dtype));
        adapter.Magnitude = new Parameter(norm.to(adapter.LoraA.weight!.dtype).detach().clone().DetachFromDisposeScope());
        adapter.register_parameter("lora_magnitude_vector", adapter.Magnitude);
    }

    /// <summary>W ← W + ΔW (DoRA: W ← (m/‖W + ΔW‖)·(W + ΔW), caching the norm for unmerge); a lora_B bias goes into
    /// the bias.</summary>
    protected override void MergeOne(string name, LoraAdapter adapter, bool safe)
    {
        var delta = adapter.DeltaWeight().to(Weight.dtype);
        var weight = WeightOutIn();
        Tensor merged;
        Tensor? norm = null;
        if (adapter.Magnitude is { } magnitude)
        {
            norm = DoraMath.WeightNorm(weight, delta).detach();
            merged = (magnitude.to(Weight.dtype) / norm).view(-1, 1) * (weight + delta);
        }
        else
        {
            merged = weight + delta;
        }

        var newBias = adapter.LoraB.bias is { } loraBias && Bias is not null ? Bias + loraBias.to(Bias.dtype) * adapter.Scaling : null;
        if (safe && (!merged.isfinite().all().item<bool>() || (newBias is not null && !newBias.isfinite().all().item<bool>())))
            throw NotFinite(name);

        Weight.copy_(FanInFanOut ? merged.t() : merged);
        if (newBias is not null)
            Bias!.copy_(newBias);
        if (norm is not null)
            _mergedDoraNorms[name] = norm.clone().DetachFromDisposeScope();
    }

    protected override void UnmergeOne(string name, LoraAdapter adapter)
    {
        var delta = adapter.DeltaWeight().to(Weight.dtype);
        var weight = WeightOutIn();
        Tensor original;
        if (adapter.Magnitude is { } magnitude && _mergedDoraNorms.Remove(name, out var norm))
        {
            original = weight / (magnitude.to(Weight.dtype) / norm).view(-1, 1) - delta;
            norm.Dispose();
        }
        else
        {
            original = weight - delta;
        }

        Weight.copy_(FanInFanOut ? original.t() : original);
        if (adapter.LoraB.bias is { } loraBias && Bias is not null)
            Bias.copy_(Bias - loraBias.to(Bias.dtype) * adapter.Scaling);
    }

    protected override void OnRemoved(string name)
    {
        if (_mergedDoraNorms.Remove(name, out var norm))
            norm.Dispose();
    }

    /// <summary><c>x (…, in) → (…, out)</c>: the base map plus the active, unmerged adapters.</summary>
    public override Tensor forward(Tensor x)
    {
        if (!AdaptersApply)
            return BaseForward(x);

        using var scope = NewDisposeScope();
        var result = BaseForward(x);
        foreach (var adapter in UnmergedActiveAdapters)
        {
            if (adapter.Magnitude is null)
            {
                result = result + adapter.call(x).to(result.dtype);
                continue;
            }

            // DoRA: without dropout (or in eval) base(x) - b is reused; with active dropout the base map is
            // recomputed on the dropped input, as PEFT does.
            var dropped = adapter.Dropout(x.to(adapter.LoraA.weight!.dtype));
            var loraOut = adapter.LoraB.call(adapter.LoraA.call(dropped)) * adapter.Scaling;
            Tensor baseWithoutBias;
            if (adapter.DropoutP > 0 && training)
                baseWithoutBias = BaseForwardWithoutBias(dropped.to(Weight.dtype));
            else
                baseWithoutBias = Bias is null ? result : result - Bias;
            Tensor norm;
            using (no_grad())
                norm = DoraMath.WeightNorm(WeightOutIn(), adapter.DeltaWeight().to(Weight.dtype)).detach();
            result = result + DoraMath.Term(baseWithoutBias, loraOut.to(result.dtype), adapter.Magnitude.to(result.dtype), norm);
        }

        return result.MoveToOuterDisposeScope();
    }

    private Tensor BaseForwardWithoutBias(Tensor x) =>
        FanInFanOut ? x.matmul(Weight) : nn.functional.linear(x, Weight);

    /// <summary>The base map alone, ignoring adapters.</summary>
    public Tensor BaseForward(Tensor x)
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
