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
public class LinearLayer : nn.Module<Tensor, Tensor>
{
    /// <summary><c>(out, in)</c>, or <c>(in, out)</c> when <see cref="FanInFanOut"/>.</summary>
    [ComponentName(Name = "weight")]
    public Parameter Weight;

    /// <summary><c>(out)</c>, or null for a layer without bias.</summary>
    [ComponentName(Name = "bias")]
    public Parameter? Bias;

    /// <summary>The module name adapters are registered under: <c>{path}.adapters.{name}.lora_A.weight</c>.</summary>
    public const string AdaptersName = "adapters";

    /// <summary>LoRA adapters by name (empty for a plain layer).</summary>
    [ComponentName(Name = AdaptersName)]
    public AdapterDict Adapters = new();

    private readonly List<string> _active = [];
    private readonly Dictionary<string, Tensor> _mergedDoraNorms = [];
    private readonly List<string> _merged = [];

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

    /// <summary>Adapters whose update is applied in <see cref="forward"/> (or folded into the weight when merged).</summary>
    public IReadOnlyList<string> ActiveAdapters => _active;

    /// <summary>Adapters currently folded into <see cref="Weight"/>.</summary>
    public IReadOnlyList<string> MergedAdapters => _merged;

    /// <summary>While true, <see cref="forward"/> is the base layer alone (merged adapters are unmerged first).</summary>
    public bool AdaptersDisabled { get; private set; }

    /// <summary>Adds adapter <paramref name="name"/>; the first one added becomes active.</summary>
    public LoraAdapter AddAdapter(string name, LoraAdapter adapter)
    {
        if (Adapters.ContainsKey(name))
            throw new LoraException($"adapter '{name}' already exists on this layer.");
        if (_merged.Count > 0)
            throw new LoraException($"cannot add adapter '{name}' while adapters are merged; unmerge first.");
        Adapters.Add(name, adapter);
        if (_active.Count == 0)
            _active.Add(name);
        return adapter;
    }

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

    /// <summary>Makes exactly <paramref name="names"/> active.</summary>
    public void SetActiveAdapters(IEnumerable<string> names)
    {
        var list = names.ToList();
        foreach (var n in list)
            Adapter(n);
        if (_merged.Count > 0)
            throw new LoraException("cannot change the active adapters while adapters are merged; unmerge first.");
        _active.Clear();
        _active.AddRange(list);
    }

    /// <summary>Removes adapter <paramref name="name"/> (unmerging it first if needed).</summary>
    public void DeleteAdapter(string name)
    {
        if (_merged.Contains(name))
            Unmerge();
        Remove(name);
    }

    /// <summary>Removes adapter <paramref name="name"/> as is: if it was merged, its update stays in the weight
    /// (the second half of merge-and-unload).</summary>
    public void Remove(string name)
    {
        var adapter = Adapter(name);
        Adapters.Remove(name);
        _active.Remove(name);
        _merged.Remove(name);
        if (_mergedDoraNorms.Remove(name, out var norm))
            norm.Dispose();
        adapter.Dispose();
    }

    /// <summary>Turns adapters off (true) or back on; disabling unmerges merged adapters first, as PEFT does.</summary>
    public void SetAdaptersDisabled(bool disabled)
    {
        if (disabled && _merged.Count > 0)
            Unmerge();
        AdaptersDisabled = disabled;
    }

    /// <summary>The adapter named <paramref name="name"/>.</summary>
    public LoraAdapter Adapter(string name) =>
        Adapters.TryGetValue(name, out var adapter) ? adapter : throw new LoraException($"no adapter named '{name}' on this layer (has: {string.Join(", ", Adapters.Names)}).");

    /// <summary>
    /// Folds the active, unmerged adapters into <see cref="Weight"/> (and a lora_B bias into <see cref="Bias"/>).
    /// With <paramref name="safe"/>, the new weights are computed aside and checked for NaN/Inf before anything is
    /// written.
    /// </summary>
    public void Merge(bool safe = true)
    {
        using var noGrad = no_grad();
        foreach (var name in _active.Where(n => !_merged.Contains(n)).ToList())
        {
            using var scope = NewDisposeScope();
            var adapter = Adapter(name);
            var delta = adapter.DeltaWeight().to(Weight.dtype);
            var weight = WeightOutIn();
            Tensor merged;
            if (adapter.Magnitude is { } magnitude)
            {
                var norm = DoraMath.WeightNorm(weight, delta).detach();
                merged = (magnitude.to(Weight.dtype) / norm).view(-1, 1) * (weight + delta);
                _mergedDoraNorms[name] = norm.clone().DetachFromDisposeScope();
            }
            else
            {
                merged = weight + delta;
            }

            var newBias = adapter.LoraB.bias is { } loraBias && Bias is not null ? Bias + loraBias.to(Bias.dtype) * adapter.Scaling : null;
            if (safe && (!merged.isfinite().all().item<bool>() || (newBias is not null && !newBias.isfinite().all().item<bool>())))
            {
                if (_mergedDoraNorms.Remove(name, out var stale))
                    stale.Dispose();
                throw new LoraException($"merging adapter '{name}' would put NaN or Inf into the weights; the adapter is broken, nothing was merged.");
            }

            Weight.copy_(FanInFanOut ? merged.t() : merged);
            if (newBias is not null)
                Bias!.copy_(newBias);
            _merged.Add(name);
        }
    }

    /// <summary>Reverses <see cref="Merge"/> for every merged adapter (exact up to floating-point rounding).</summary>
    public void Unmerge()
    {
        using var noGrad = no_grad();
        for (var i = _merged.Count - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            var name = _merged[i];
            var adapter = Adapter(name);
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
            _merged.RemoveAt(i);
        }
    }

    /// <summary><c>x (…, in) → (…, out)</c>: the base map plus the active, unmerged adapters.</summary>
    public override Tensor forward(Tensor x)
    {
        if (Adapters.Count == 0 || AdaptersDisabled || _active.All(_merged.Contains))
            return BaseForward(x);

        using var scope = NewDisposeScope();
        var result = BaseForward(x);
        foreach (var name in _active)
        {
            if (_merged.Contains(name))
                continue;
            var adapter = Adapter(name);
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
