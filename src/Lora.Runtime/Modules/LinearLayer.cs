using Lora.Backend;
using Lora.Modules.Bases;
using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Modules;

/// <summary>
/// A linear map <c>in → out</c> that hosts adapters: Hugging Face's <c>nn.Linear</c> (and, over a
/// <see cref="Conv1DLinear"/> base, GPT-2's <c>Conv1D</c>). How the weight is stored and applied is its
/// <see cref="Base"/> (a base-layer kind: dense, Conv1D, quantized); the adapters of any PEFT method sit on top:
/// <c>y = adapted(base)(x)</c> (see <see cref="LinearAdapter"/>). The base's tensors are registered on this module
/// under their checkpoint keys (<c>weight</c>, <c>bias</c>), the adapters under <c>adapters.{name}</c>; adapters can
/// be disabled, merged into the weight (safely: NaN/Inf refused) and unmerged.
/// </summary>
public class LinearLayer : AdapterHost<LinearAdapter>
{
    private LinearBase _base;

    /// <summary>A dense layer with uninitialised weights (fill them with a checkpoint or <c>InitializeWeights</c>).</summary>
    public LinearLayer(long inFeatures, long outFeatures, bool hasBias = true, ScalarType dtype = ScalarType.Float32, torch.Device? device = null)
        : this(nameof(LinearLayer), new DenseLinear(inFeatures, outFeatures, hasBias, dtype, device))
    {
    }

    /// <summary>A dense layer over an existing <c>(out, in)</c> weight, shared not copied (a tied <c>lm_head</c>).</summary>
    public LinearLayer(Parameter weight, Parameter? bias = null)
        : this(nameof(LinearLayer), new DenseLinear(weight, bias))
    {
    }

    /// <summary>A layer over the given base-layer kind.</summary>
    public LinearLayer(LinearBase linearBase)
        : this(nameof(LinearLayer), linearBase)
    {
    }

    protected LinearLayer(string name, LinearBase linearBase)
        : base(name)
    {
        _base = linearBase;
        RegisterComponents();
        RegisterBase();
    }

    /// <summary>How the weight is stored and applied.</summary>
    public LinearBase Base => _base;

    public long InFeatures => _base.InFeatures;

    public long OutFeatures => _base.OutFeatures;

    /// <summary>PEFT's <c>fan_in_fan_out</c>: the weight is stored <c>(in, out)</c> (GPT-2 <c>Conv1D</c>).</summary>
    public bool FanInFanOut => _base.FanInFanOut;

    /// <summary>The stored weight of a dense base (<c>(out, in)</c>, or <c>(in, out)</c> when <see cref="FanInFanOut"/>).</summary>
    /// <exception cref="LoraException">The base is not dense (read <see cref="LinearBase.Weight"/> instead).</exception>
    public Parameter Weight => _base is DenseLinear dense
        ? dense.WeightParameter
        : throw new LoraException($"this layer's weight is stored as {_base.GetType().Name}, not as a dense parameter; use Base.Weight() for the (out, in) values.");

    /// <summary>The bias <c>(out)</c>, or null.</summary>
    public Parameter? Bias => _base.Bias;

    /// <summary>The weight as <c>(out, in)</c> whatever the storage.</summary>
    public Tensor WeightOutIn() => _base.Weight();

    /// <summary>Swaps the base-layer kind (e.g. for a quantized one holding the same map); the new base's tensors
    /// replace the old ones under their names. Adapters stay; none may be merged.</summary>
    public void ReplaceBase(LinearBase linearBase)
    {
        ArgumentNullException.ThrowIfNull(linearBase);
        if (linearBase.InFeatures != InFeatures || linearBase.OutFeatures != OutFeatures)
            throw new ArgumentException($"the new base maps {linearBase.InFeatures} → {linearBase.OutFeatures}, this layer {InFeatures} → {OutFeatures}.", nameof(linearBase));
        if (MergedAdapters.Count > 0)
            throw new LoraException("cannot replace the base of a layer with merged adapters; unmerge first.");
        foreach (var (name, _) in _base.Parameters)
            _internal_params.Remove(name);
        foreach (var (name, _) in _base.Buffers)
            _internal_buffers.Remove(name);
        _base = linearBase;
        RegisterBase();
    }

    /// <summary><c>x (…, in) → (…, out)</c>: the base map with the active, unmerged adapters applied.</summary>
    public override Tensor forward(Tensor x)
    {
        if (!AdaptersApply)
            return _base.Forward(x);

        using var scope = NewDisposeScope();
        var adapters = UnmergedActiveAdapters.ToList();
        var input = x;
        foreach (var adapter in adapters)
            input = adapter.AdaptInput(input);
        var result = _base.Forward(input);
        foreach (var adapter in adapters)
            result = adapter.AdaptOutput(_base, x, result);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Whether <see cref="forward"/> applies adapters (some are active and not merged).</summary>
    public bool HasActiveAdapters => AdaptersApply;

    /// <summary>The base map alone, ignoring adapters.</summary>
    public Tensor BaseForward(Tensor x) => _base.Forward(x);

    protected override void MergeOne(LinearAdapter adapter, bool safe) => adapter.Merge(_base, safe);

    protected override void UnmergeOne(LinearAdapter adapter) => adapter.Unmerge(_base);

    protected override void OnRemoved(LinearAdapter adapter) => adapter.OnRemoved();

    /// <summary>TorchSharp's <c>to()</c> replaces the registered tensors: hand the new ones to the base. A quantized
    /// base's buffers (codes, fp32 scales and tables) are moved but never converted: <c>to(bfloat16)</c> would
    /// otherwise round the scales and tables.</summary>
    protected override void _toEpilog(ScalarType? dtype, torch.Device? device, bool non_blocking)
    {
        if (dtype is null || !_base.IsQuantized)
        {
            base._toEpilog(dtype, device, non_blocking);
        }
        else
        {
            var held = _base.Buffers.Select(b => b.Name).ToList();
            var saved = held.Select(name => (Name: name, Entry: _internal_buffers[name])).ToList();
            foreach (var name in held)
                _internal_buffers.Remove(name);
            base._toEpilog(dtype, device, non_blocking);
            foreach (var (name, (tensor, persistent)) in saved)
            {
                var moved = device is null || Devices.Same(tensor.device, device) ? tensor : tensor.to(device, disposeAfter: true).DetachFromDisposeScope();
                _internal_buffers.Add(name, (moved, persistent));
            }
        }

        _base.Rebind(name => _internal_params[name], name => _internal_buffers[name].Item1);
    }

    private void RegisterBase()
    {
        foreach (var (name, parameter) in _base.Parameters)
            register_parameter(name, parameter);
        foreach (var (name, buffer) in _base.Buffers)
            register_buffer(name, buffer);
    }
}
