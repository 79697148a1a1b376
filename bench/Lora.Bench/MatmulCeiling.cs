using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// The machine's matmul throughput in the compute dtype, measured in the same run as what it is compared with, with a
/// shape large enough not to be launch-bound (CPU: 2048³, ~17 GFLOP, ~0.1 s on 2 cores; CUDA: 8192³, ~1.1 TFLOP,
/// ~1.4 ms on an H100-class GPU, against ~10 µs of launch). <see cref="Measure"/> is called between the timed steps
/// (never inside one), and <see cref="Best"/> is the best of those measurements: on a shared machine a single
/// measurement can land on a busy moment and come out below what the step itself reaches (issue 15: "MFU 1.10").
/// </summary>
internal sealed class MatmulCeiling : IDisposable
{
    private readonly Tensor _a;
    private readonly Tensor _b;
    private readonly Device _device;
    private readonly long _n;

    public MatmulCeiling(Device device, ScalarType dtype)
    {
        _device = device;
        _n = device.type == DeviceType.CUDA ? 8192 : 2048;
        _a = randn(_n, _n, dtype: dtype, device: device);
        _b = randn(_n, _n, dtype: dtype, device: device);
        using (_a.matmul(_b))
            BenchShape.Synchronize(device); // first call: allocator and kernel selection
    }

    /// <summary>FLOP/s, best so far.</summary>
    public double Best { get; private set; }

    /// <summary>Measurements taken.</summary>
    public List<double> All { get; } = [];

    public void Measure()
    {
        BenchShape.Synchronize(_device);
        var sw = Stopwatch.StartNew();
        using (_a.matmul(_b))
            BenchShape.Synchronize(_device);
        var flops = 2.0 * _n * _n * _n / sw.Elapsed.TotalSeconds;
        All.Add(flops);
        Best = Math.Max(Best, flops);
    }

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }
}
