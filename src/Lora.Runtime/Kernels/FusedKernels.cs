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

    /// <summary>
    /// Whether functions that trade time for memory (<see cref="SwiGluFunction"/>: recomputes <c>silu(gate)</c> in the
    /// backward pass instead of keeping it) run on the CPU too. On CUDA they always do: one elementwise pass is
    /// microseconds there and activation memory is what limits batch and sequence length. On the CPU the pass costs
    /// more than the memory is worth (measured in docs/benchmarks.md), so by default they run only on CUDA; the
    /// benchmark's <c>--kernels lean</c> sets this to measure them on the CPU.
    /// </summary>
    public static bool MemoryLeanOnCpu
    {
        get => _leanOverride ?? _leanOnCpu;
        set => _leanOnCpu = value;
    }

    private static volatile bool _leanOnCpu;

    [ThreadStatic]
    private static bool? _leanOverride;

    /// <summary>Whether the memory-for-time trades apply to a tensor on <paramref name="device"/>.</summary>
    internal static bool MemoryLean(TorchSharp.torch.Device device) =>
        Enabled && (device.type == TorchSharp.DeviceType.CUDA || MemoryLeanOnCpu);

    /// <summary>Runs this thread with <see cref="MemoryLeanOnCpu"/> on until disposed (for tests).</summary>
    internal static IDisposable LeanOnCpu()
    {
        var previous = _leanOverride;
        _leanOverride = true;
        return new Restore(() => _leanOverride = previous);
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
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
