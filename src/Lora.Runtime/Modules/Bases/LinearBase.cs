using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Modules.Bases;

/// <summary>
/// A base-layer kind: how a linear map <c>in → out</c> stores its weight and applies it. A <see cref="LinearLayer"/>
/// hosts adapters over any kind, and adapters see only what this class offers — the forward, the weight as a dense
/// <c>(out, in)</c> tensor (dequantized when the storage is not dense) and a way to write a merged weight back — so
/// LoRA, DoRA and IA3 work the same over a dense weight (<see cref="DenseLinear"/>), GPT-2's transposed
/// <c>Conv1D</c> storage (<see cref="Conv1DLinear"/>) or a quantized one.
/// <para>
/// The kind owns its tensors; the host registers them under <see cref="Parameters"/>' names (the layer's checkpoint
/// keys relative to its path: <c>weight</c>, <c>bias</c>), so the module tree keeps Hugging Face's keys whatever the
/// kind. PEFT's counterpart is the wrapped <c>base_layer</c> (<c>tuners/tuners_utils.py</c>, <c>BaseTunerLayer</c>),
/// with the kind chosen by its dispatchers (<c>tuners/lora/model.py</c>, <c>_create_new_module</c>).
/// </para>
/// </summary>
public abstract class LinearBase
{
    /// <summary>Input features.</summary>
    public abstract long InFeatures { get; }

    /// <summary>Output features.</summary>
    public abstract long OutFeatures { get; }

    /// <summary>The bias <c>(out)</c>, dense whatever the kind, or null.</summary>
    public abstract Parameter? Bias { get; }

    /// <summary>Where the weight lives.</summary>
    public abstract Device Device { get; }

    /// <summary>The dtype the map computes in (and returns): the weight's dtype for a dense kind.</summary>
    public abstract ScalarType DType { get; }

    /// <summary>PEFT's <c>fan_in_fan_out</c>: true when the storage is <c>(in, out)</c> (GPT-2 <c>Conv1D</c>).</summary>
    public virtual bool FanInFanOut => false;

    /// <summary><c>x (…, in) → (…, out)</c>: <c>x Wᵀ + b</c>.</summary>
    public abstract Tensor Forward(Tensor x);

    /// <summary><c>x Wᵀ</c>, without the bias (DoRA rescales this part only).</summary>
    public abstract Tensor ForwardWithoutBias(Tensor x);

    /// <summary>The weight as <c>(out, in)</c> in <see cref="DType"/>: a view of the storage for a dense kind (writes
    /// through it are not supported: use <see cref="WriteWeight"/>), a dequantized copy for a quantized one.</summary>
    public abstract Tensor Weight();

    /// <summary>Replaces the weight with <paramref name="outIn"/> <c>(out, in)</c> (merge and unmerge): copied into a
    /// dense storage, requantized by a quantized kind.</summary>
    public abstract void WriteWeight(Tensor outIn);

    /// <summary>Random weights as transformers' <c>_init_weights</c>: weight ~ N(0, std²), bias 0.</summary>
    public abstract void InitializeWeights(double std, Generator? generator);

    /// <summary>The tensors the host registers, by name: its parameters (trainable in full fine-tuning)...</summary>
    public abstract IEnumerable<(string Name, Parameter Parameter)> Parameters { get; }

    /// <summary>...and its buffers (a quantized kind's codes and scales), empty for a dense kind.</summary>
    public virtual IEnumerable<(string Name, Tensor Buffer)> Buffers => [];

    /// <summary>Checkpoint entries that are not registered tensors, made when saving (bitsandbytes'
    /// <c>weight.quant_state.bitsandbytes__nf4</c> JSON blob, <c>weight_format</c>); empty for a dense kind.</summary>
    public virtual IEnumerable<(string Name, Tensor Value)> ExtraState => [];

    /// <summary>True for a quantized kind: its buffers are the frozen weight, kept in their own dtypes when the module
    /// is converted (<c>to(dtype)</c> only moves them).</summary>
    public virtual bool IsQuantized => false;

    /// <summary>Takes the tensors the host holds under <see cref="Parameters"/>' names again, after the module was
    /// moved or converted (TorchSharp's <c>to()</c> replaces a module's parameters with new tensors).</summary>
    public abstract void Rebind(Func<string, Parameter> parameter, Func<string, Tensor> buffer);
}
