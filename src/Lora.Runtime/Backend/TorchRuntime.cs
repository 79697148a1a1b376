using System.Runtime.InteropServices;
using TorchSharp;

namespace Lora.Backend;

/// <summary>
/// Start-up of the native backend. Honours <c>LORA_LIBTORCH</c> (a directory holding libtorch, e.g. a PyTorch
/// install's <c>torch/lib</c>): its libraries are loaded before TorchSharp initialises, so TorchSharp binds to them
/// and users with PyTorch get CUDA without a CUDA libtorch package. Failures become one
/// <see cref="LibTorchLoadException"/> that says what was tried and how to fix it.
/// </summary>
public static class TorchRuntime
{
    /// <summary>Environment variable naming a directory with libtorch (<c>libtorch_cpu.so</c>, optionally
    /// <c>libtorch_cuda.so</c>).</summary>
    public const string LibTorchVariable = "LORA_LIBTORCH";

    // Dependency order: each library's DT_NEEDED entries are already in the process when it loads.
    private static readonly string[] LibTorchLoadOrder =
        { "libc10", "libtorch_cpu", "libc10_cuda", "libtorch_cuda", "libtorch" };

    private static readonly Lock Gate = new();
    private static string? _preloadedFrom;
    private static bool _cpuReady;

    /// <summary>The directory libtorch was preloaded from (<c>LORA_LIBTORCH</c>), or null.</summary>
    public static string? PreloadedFrom => _preloadedFrom;

    /// <summary>Initialises libtorch and returns the device for <paramref name="spec"/> (<c>auto</c>, <c>cpu</c>,
    /// <c>cuda</c>, <c>cuda:N</c>).</summary>
    /// <param name="spec">The device as users write it.</param>
    /// <param name="notice">Told when <c>auto</c> falls back to the CPU, and why (a command says it once on stderr).</param>
    public static torch.Device Initialize(string spec = "auto", Action<string>? notice = null) => Initialize(DeviceSpec.Parse(spec), notice);

    /// <summary>Initialises libtorch and returns the requested device; <c>auto</c> picks CUDA when available.</summary>
    /// <param name="spec">The device.</param>
    /// <param name="notice">Told when <c>auto</c> falls back to the CPU, and why (a command says it once on stderr).</param>
    public static torch.Device Initialize(DeviceSpec spec, Action<string>? notice = null)
    {
        lock (Gate)
        {
            PreloadFromEnvironment();
            switch (spec.Type)
            {
                case DeviceSpec.Kind.Cpu:
                    return InitializeCpu();
                case DeviceSpec.Kind.Cuda:
                    return InitializeCuda(spec);
                default:
                    if (TryCuda())
                    {
                        EnableTf32();
                        return new torch.Device(DeviceType.CUDA, 0);
                    }

                    notice?.Invoke("device auto: CUDA is not available (the loaded libtorch has no CUDA support or no GPU is " +
                        $"visible; set {LibTorchVariable} to a CUDA PyTorch's torch/lib to use a GPU), running on the CPU.");
                    return InitializeCpu();
            }
        }
    }

    /// <summary>True when a CUDA device can be used (loads libtorch if needed).</summary>
    public static bool CudaAvailable
    {
        get
        {
            lock (Gate)
            {
                PreloadFromEnvironment();
                return TryCuda();
            }
        }
    }

    private static torch.Device InitializeCpu()
    {
        if (!_cpuReady)
        {
            Guard("cpu", () => torch.InitializeDeviceType(DeviceType.CPU));
            _cpuReady = true;
        }

        return torch.CPU;
    }

    /// <summary>
    /// fp32 matmuls and convolutions on CUDA use TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation: ~8× the
    /// fp32 rate on Ampere and later), as transformers' <c>TrainingArguments(tf32=True)</c> sets
    /// <c>torch.backends.cuda.matmul.allow_tf32</c> and <c>torch.backends.cudnn.allow_tf32</c>. Only fp32 work is
    /// affected (bf16, the CUDA default, does not go through it); set <see cref="Tf32VariableName"/>=0 to keep exact fp32.
    /// </summary>
    private static void EnableTf32()
    {
        var on = Environment.GetEnvironmentVariable(Tf32VariableName) is not "0";
        torch.backends.cuda.matmul.allow_tf32 = on;
        torch.backends.cudnn.allow_tf32 = on;
    }

    /// <summary><c>LORA_TF32</c>: 0 turns TF32 off for fp32 matmuls on CUDA (default on).</summary>
    public const string Tf32VariableName = "LORA_TF32";

    private static torch.Device InitializeCuda(DeviceSpec spec)
    {
        if (!TryCuda())
        {
            throw new LibTorchLoadException(
                $"Device '{spec}' was requested but CUDA is not available: the loaded libtorch has no CUDA support " +
                "or no GPU is visible. Fixes: set LORA_LIBTORCH to a CUDA-enabled PyTorch install's torch/lib " +
                "(python3 -c \"import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))\"), " +
                "or build with LoraTorchBackend=cuda and a CUDA libtorch package; or use --device cpu.");
        }

        var index = Math.Max(spec.Index, 0);
        var count = torch.cuda.device_count();
        if (index >= count)
            throw new LibTorchLoadException($"Device '{spec}' was requested but only {count} CUDA device(s) are visible.");
        EnableTf32();
        return new torch.Device(DeviceType.CUDA, index);
    }

    private static bool TryCuda()
    {
        var available = false;
        Guard("cuda", () => available = torch.TryInitializeDeviceType(DeviceType.CUDA));
        return available;
    }

    private static void PreloadFromEnvironment()
    {
        var dir = Environment.GetEnvironmentVariable(LibTorchVariable);
        if (string.IsNullOrWhiteSpace(dir) || _preloadedFrom == dir)
            return;
        if (!Directory.Exists(dir))
            throw new LibTorchLoadException($"{LibTorchVariable}='{dir}' is not a directory. Point it at a directory holding libtorch_cpu (and libtorch_cuda for GPUs), e.g. a PyTorch install's torch/lib, or unset it.");

        var extension = OperatingSystem.IsWindows() ? ".dll" : OperatingSystem.IsMacOS() ? ".dylib" : ".so";
        var loaded = 0;
        foreach (var name in LibTorchLoadOrder)
        {
            // Windows names drop the "lib" prefix (torch_cpu.dll).
            var file = Path.Combine(dir, (OperatingSystem.IsWindows() ? name[3..] : name) + extension);
            if (!File.Exists(file))
                continue;
            try
            {
                NativeLibrary.Load(file);
                loaded++;
            }
            catch (DllNotFoundException e)
            {
                throw new LibTorchLoadException($"{LibTorchVariable}: could not load {file}: {e.Message}", e);
            }
        }

        if (loaded == 0)
            throw new LibTorchLoadException($"{LibTorchVariable}='{dir}' holds no libtorch libraries (looked for {string.Join(", ", LibTorchLoadOrder.Select(n => n + extension))}).");
        _preloadedFrom = dir;
    }

    private static void Guard(string device, Action init)
    {
        try
        {
            init();
        }
        catch (Exception e) when (e is NotSupportedException or TypeInitializationException or DllNotFoundException or InvalidOperationException)
        {
            throw new LibTorchLoadException(Explain(device, e), e);
        }
    }

    private static string Explain(string device, Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null && inner is TypeInitializationException)
            inner = inner.InnerException;
        var firstLine = inner.Message.Split('\n', 2)[0].Trim();
        var tried = _preloadedFrom is null
            ? "the libtorch binaries next to the application (runtimes/<rid>/native, from the libtorch-cpu package)"
            : $"libtorch from {LibTorchVariable}={_preloadedFrom}";
        return $"Could not load libtorch for device '{device}'. Tried {tried}. TorchSharp said: {firstLine}\n" +
               "Fixes: reference the Lora package (it brings the platform's libtorch and, on Linux systems whose " +
               "libstdc++ lacks GLIBCXX_3.4.32 such as Debian 12 / Ubuntu 22.04, patches libLibTorchSharp.so at build " +
               "time; rebuild if you copied binaries by hand), or set " + LibTorchVariable +
               " to a PyTorch install's torch/lib directory.";
    }
}
