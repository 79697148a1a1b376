using Lora.Modules.Bases;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Modules;

/// <summary>
/// GPT-2's <c>Conv1D</c>: a <see cref="LinearLayer"/> over the <see cref="Conv1DLinear"/> kind (weight stored
/// <c>(in, out)</c>, <c>y = x W + b</c>; <see cref="LinearLayer.FanInFanOut"/> is true). Keys as in transformers:
/// <c>weight</c> <c>(in, out)</c>, <c>bias</c> <c>(out)</c>.
/// </summary>
public sealed class Conv1D : LinearLayer
{
    /// <summary>A layer with uninitialised weights; note the argument order of transformers'
    /// <c>Conv1D(nf=out, nx=in)</c> is not used here: inputs first, as for <see cref="LinearLayer"/>.</summary>
    public Conv1D(long inFeatures, long outFeatures, bool hasBias = true, ScalarType dtype = ScalarType.Float32, torch.Device? device = null)
        : base(nameof(Conv1D), new Conv1DLinear(inFeatures, outFeatures, hasBias, dtype, device))
    {
    }
}
