namespace Lora.Kernels;

/// <summary>
/// Whether the model code uses the memory-lean autograd functions of this folder (<see cref="RmsNormFunction"/>,
/// <see cref="SwiGluFunction"/>, <see cref="RotaryFunction"/>), grouped-query attention without repeating K/V
/// (<see cref="AtenScript.Attention"/>) and LoRA's folded update (<c>LoraAdapter.AdaptOutput</c>), or the plain
/// composite ops that autograd differentiates step by step. On by default; the composite path stays for the A/B
/// benchmark (<c>bench/Lora.Bench train-throughput --kernels composite</c>) and for the tests that compare the two.
/// Both compute the same forward values; gradients agree to rounding.
/// </summary>
public static class FusedKernels
{
    private static volatile bool _enabled = true;

    [ThreadStatic]
    private static bool? _threadOverride;

    /// <summary>The process-wide setting (the benchmark's <c>--kernels</c>), unless this thread is inside
    /// <see cref="Composite"/>.</summary>
    public static bool Enabled
    {
        get => _threadOverride ?? _enabled;
        set => _enabled = value;
    }

    /// <summary>Runs this thread on the composite path until disposed (tests compare the paths side by side without
    /// touching other threads).</summary>
    internal static IDisposable Composite() => new Override(false);

    private sealed class Override : IDisposable
    {
        private readonly bool? _previous;

        public Override(bool value)
        {
            _previous = _threadOverride;
            _threadOverride = value;
        }

        public void Dispose() => _threadOverride = _previous;
    }
}
