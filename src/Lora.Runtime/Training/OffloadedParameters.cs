using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// Optimizer state on the CPU (<see cref="TrainingOptions.OptimizerOffload"/>): the optimizer updates fp32 CPU copies
/// of the trainable parameters, so AdamW's two moments per parameter never take device memory. Each step the
/// clipped gradients go to the host, the optimizer steps there, and the updated values come back — ZeRO-Offload's
/// scheme, the substitute for bitsandbytes' paged optimizers (TorchSharp has no <c>cudaMallocManaged</c>). The cost
/// is two copies of the trainable parameters over the host link per step and AdamW on the CPU
/// (docs/benchmarks.md).
/// </summary>
internal sealed class OffloadedParameters : IDisposable
{
    private readonly List<(Parameter Device, Parameter Host)> _pairs;

    /// <param name="parameters">The trainable parameters.</param>
    /// <param name="host">Where the fp32 copies live: the CPU (offload, the default), or the parameters' own device
    /// (fp32 master weights of bf16 parameters).</param>
    public OffloadedParameters(IEnumerable<Parameter> parameters, Device? host = null)
    {
        using var noGrad = no_grad();
        _host = host ?? CPU;
        _pairs = parameters
            .Select(p => (p, new Parameter(p.detach().to(ScalarType.Float32, _host, copy: true), requires_grad: true)))
            .ToList();
    }

    private readonly Device _host;

    /// <summary>The host copy of <paramref name="device"/>.</summary>
    public Parameter HostOf(Parameter device) =>
        _pairs.First(p => ReferenceEquals(p.Device, device)).Host;

    /// <summary>Hands the device gradients to the host copies and frees them on the device.</summary>
    public void GradientsToHost()
    {
        using var noGrad = no_grad();
        foreach (var (device, host) in _pairs)
        {
            if (device.grad is not { } grad)
            {
                host.grad = null;
                continue;
            }

            using var onHost = grad.to(ScalarType.Float32, _host, copy: true);
            if (host.grad is { } existing)
                existing.copy_(onHost);
            else
                host.grad = onHost.clone();
            device.grad = null;
        }
    }

    /// <summary>Copies the updated host values back into the model's parameters.</summary>
    public void ParametersToDevice()
    {
        using var noGrad = no_grad();
        foreach (var (device, host) in _pairs)
            device.copy_(host);
    }

    /// <summary>Copies the model's parameters into the host copies (after they were loaded from a checkpoint).</summary>
    public void ParametersToHost()
    {
        using var noGrad = no_grad();
        foreach (var (device, host) in _pairs)
            host.copy_(device);
    }

    public void Dispose()
    {
        foreach (var (_, host) in _pairs)
            host.Dispose();
    }
}
