using System.Globalization;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// Peak memory of a stretch of work. CPU: the resident set's high-water mark (<c>VmHWM</c> of /proc/self/status),
/// reset to the current resident set at <see cref="Reset"/> by writing <c>5</c> to /proc/self/clear_refs (Linux ≥
/// 4.0), after giving freed native memory back (<c>malloc_trim</c>), so it is what the measured steps themselves
/// reached. CUDA: <c>cudaMemGetInfo</c> (total − free), sampled at <see cref="Sample"/> after every step: TorchSharp
/// does not expose the caching allocator's statistics, and the allocator keeps what a step reserved, so the largest
/// sample is the allocator's peak <b>reserved</b> memory plus the CUDA context — an upper bound of the
/// <c>torch.cuda.max_memory_allocated</c> the reference prints.
/// </summary>
internal sealed class PeakMemory
{
    private readonly Device _device;
    private long _peak;

    public PeakMemory(Device device) => _device = device;

    /// <summary>Resident (CPU) or device-used (CUDA) bytes when <see cref="Reset"/> ran: model, optimizer state, buffers.</summary>
    public long Baseline { get; private set; }

    /// <summary>"VmHWM" (CPU) or "cudaMemGetInfo" (CUDA).</summary>
    public string Method => _device.type == DeviceType.CUDA ? "cudaMemGetInfo(total-free), max after each step" : "VmHWM after clear_refs 5";

    public void Reset()
    {
        if (_device.type == DeviceType.CUDA)
        {
            Baseline = CudaUsed();
            _peak = Baseline;
            return;
        }

        MallocTrim(0);
        File.WriteAllText("/proc/self/clear_refs", "5");
        Baseline = Status("VmRSS");
    }

    public void Sample()
    {
        if (_device.type == DeviceType.CUDA)
            _peak = Math.Max(_peak, CudaUsed());
    }

    /// <summary>Peak bytes since <see cref="Reset"/>.</summary>
    public long Peak => _device.type == DeviceType.CUDA ? _peak : Status("VmHWM");

    private static long Status(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }

        return -1;
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    private delegate int MemGetInfo(out nuint free, out nuint total);

    private static MemGetInfo? _memGetInfo;

    /// <summary>The CUDA runtime libtorch_cuda already loaded (dlopen finds it by soname).</summary>
    private static long CudaUsed()
    {
        if (_memGetInfo is null)
        {
            foreach (var name in new[] { "libcudart.so.13", "libcudart.so.12", "libcudart.so" })
            {
                if (NativeLibrary.TryLoad(name, out var lib) && NativeLibrary.TryGetExport(lib, "cudaMemGetInfo", out var fn))
                {
                    _memGetInfo = Marshal.GetDelegateForFunctionPointer<MemGetInfo>(fn);
                    break;
                }
            }
        }

        if (_memGetInfo is null || _memGetInfo(out var free, out var total) != 0)
            return -1;
        return (long)(total - free);
    }
}
