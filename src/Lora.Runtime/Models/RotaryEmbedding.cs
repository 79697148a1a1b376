using Lora.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Rotary position embeddings in transformers' convention (<c>rotate_half</c>: the two halves of each head are the
/// real and imaginary parts). <c>inv_freq[i] = θ^(-2i/d)</c>, i &lt; d/2, computed in fp32 and never cast to the
/// model dtype; rope scaling (linear, llama3) rescales <c>inv_freq</c>. For position p:
/// <c>cos = cos(p·[inv_freq, inv_freq])</c>, likewise sin, and <c>x' = x·cos + rotate_half(x)·sin</c>.
/// Holds no parameters or buffers: nothing of it appears in the module tree or the checkpoint.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly float[] _invFreq;

    public RotaryEmbedding(RopeConfig rope, int headDim)
    {
        if (headDim % 2 != 0)
            throw new ArgumentException($"head_dim must be even for rotary embeddings, got {headDim}.", nameof(headDim));
        HeadDim = headDim;
        _invFreq = InverseFrequencies(rope, headDim);
    }

    public int HeadDim { get; }

    /// <summary><c>inv_freq</c> <c>(head_dim/2)</c>, fp32.</summary>
    public IReadOnlyList<float> InvFreq => _invFreq;

    /// <summary>cos and sin <c>(B, T, head_dim)</c> in <paramref name="dtype"/> for <paramref name="positionIds"/>
    /// <c>(B, T)</c>; computed in fp32 like transformers (autocast off), then cast.</summary>
    public (Tensor Cos, Tensor Sin) Compute(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var invFreq = tensor(_invFreq, device: positionIds.device);              // (d/2)
        var freqs = positionIds.to(ScalarType.Float32).unsqueeze(-1) * invFreq; // (B, T, d/2): outer product
        var emb = cat([freqs, freqs], -1);                                      // (B, T, d)
        var cos = emb.cos().to(dtype);
        var sin = emb.sin().to(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>Rotates <paramref name="x"/> <c>(B, H, T, d)</c> by cos/sin <c>(B, T, d)</c>. Under autograd, one
    /// function whose backward applies the transposed rotation in one pass (<see cref="RotaryFunction"/>).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var c = cos.unsqueeze(1); // (B, 1, T, d), broadcast over heads
        var s = sin.unsqueeze(1);
        var y = FusedKernels.MemoryLean(x.device) && is_grad_enabled() && x.requires_grad && !c.requires_grad && !s.requires_grad
            ? RotaryFunction.Apply(x, c, s)
            : RotaryFunction.Composite(x, c, s);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary><c>[x1, x2] → [-x2, x1]</c> over the last dimension.</summary>
    public static Tensor RotateHalf(Tensor x)
    {
        using var scope = NewDisposeScope();
        var half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        return cat([x2.neg(), x1], -1).MoveToOuterDisposeScope();
    }

    /// <summary><c>inv_freq</c> as transformers computes it (fp32 tensor arithmetic, so the values agree bit for bit
    /// with <c>_compute_default_rope_parameters</c> / <c>_compute_llama3_parameters</c>).</summary>
    public static float[] InverseFrequencies(RopeConfig rope, int headDim)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var exponent = arange(0, headDim, 2, ScalarType.Int64).to(ScalarType.Float32) / headDim;
        var invFreq = full_like(exponent, rope.Theta).pow(exponent).reciprocal(); // 1 / θ^(2i/d)

        switch (rope.Type)
        {
            case "linear":
                invFreq = invFreq / rope.Factor;
                break;
            case "llama3":
            {
                // Llama 3.1: keep high frequencies, divide low ones by factor, interpolate smoothly in between.
                var lowFreqWavelen = rope.OriginalMaxPositions / rope.LowFreqFactor;
                var highFreqWavelen = rope.OriginalMaxPositions / rope.HighFreqFactor;
                var wavelen = invFreq.reciprocal() * (2 * Math.PI);
                var scaled = where(wavelen.gt(lowFreqWavelen), invFreq / rope.Factor, invFreq);
                var smooth = (wavelen.reciprocal() * rope.OriginalMaxPositions - rope.LowFreqFactor) / (rope.HighFreqFactor - rope.LowFreqFactor);
                var smoothed = (1 - smooth) * scaled / rope.Factor + smooth * scaled;
                var isMedium = wavelen.lt(highFreqWavelen).logical_not().logical_and(wavelen.gt(lowFreqWavelen).logical_not());
                invFreq = where(isMedium, smoothed, scaled);
                break;
            }
        }

        return invFreq.data<float>().ToArray();
    }
}
