namespace Lora.Kernels;

/// <summary>
/// Whether the model code uses the memory-lean autograd functions of this folder (<see cref="RmsNormFunction"/>,
/// <see cref="SwiGluFunction"/>, <see cref="RotaryFunction"/>; on CUDA, see <see cref="MemoryLeanOnCpu"/>),
/// grouped-query attention without repeating K/V (<see cref="AtenScript.GroupedAttention"/>) and LoRA's folded update
/// (<c>LoraAdapter.AdaptOutput</c>), or the plain composite ops that autograd differentiates step by step. On by
/// default; the composite path stays for the A/B benchmark (<c>bench/Lora.Bench train-throughput --kernels
/// composite</c>) and for the tests that compare the two. Both compute the same forward values; gradients agree to
/// rounding.
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
    /// Whether the autograd functions of this folder (<see cref="RmsNormFunction"/>, <see cref="RotaryFunction"/>,
    /// <see cref="SwiGluFunction"/>) run on the CPU too. On CUDA they always do (with <see cref="Enabled"/>): there a
    /// bf16 RMSNorm would otherwise keep an fp32 copy of its input, SwiGLU keeps one <c>(B, T, intermediate)</c> tensor
    /// less per layer for one elementwise pass of microseconds, and each function launches fewer kernels than the
    /// composite's backward. On the CPU, measured at the bench's default fp32 shape (docs/benchmarks.md), they do not
    /// pay: in fp32 autograd keeps only aliases for RMSNorm and RoPE anyway, their time gain (~4 % of a step) is
    /// eaten by SwiGLU's recomputation (1.5–1.9× its composite), and TorchSharp's custom-function machinery (an
    /// output-sized allocation per call, handles kept to the next callback) raised glibc's resident high-water mark by
    /// 60–150 MB. So by
    /// default they run only on CUDA; the benchmark's <c>--kernels lean</c> sets this to measure them on the CPU.
    /// </summary>
    public static bool MemoryLeanOnCpu
    {
        get => _leanOverride ?? _leanOnCpu;
        set => _leanOnCpu = value;
    }

    private static volatile bool _leanOnCpu;

    [ThreadStatic]
    private static bool? _leanOverride;

    /// <summary>Whether the autograd functions apply to a tensor on <paramref name="device"/>.</summary>
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
    internal static IDisposable Composite()
    {
        var previous = _threadOverride;
        _threadOverride = false;
        return new Restore(() => _threadOverride = previous);
    }
}
