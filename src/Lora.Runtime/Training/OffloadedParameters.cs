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
    private readonly List<(string Name, Parameter Device, Parameter Host)> _pairs;

    /// <param name="parameters">The trainable parameters.</param>
    /// <param name="host">Where the fp32 copies live: the CPU (offload, the default), or the parameters' own device
    /// (fp32 master weights of bf16 parameters).</param>
    public OffloadedParameters(IEnumerable<(string Name, Parameter Parameter)> parameters, Device? host = null)
    {
        using var noGrad = no_grad();
        _host = host ?? CPU;
        _pairs = parameters
            .Select(p => (p.Name, p.Parameter, new Parameter(p.Parameter.detach().to(ScalarType.Float32, _host, copy: true), requires_grad: true)))
            .ToList();
    }

    /// <summary>Whether the fp32 copies hold more than the model's weights do (some trainable weight is not fp32): then
    /// a checkpoint needs them (<see cref="SaveMasters"/>) for an exact resume.</summary>
    public bool KeepsMasters => _pairs.Any(p => p.Device.dtype != ScalarType.Float32);

    /// <summary>Writes the fp32 copies to <paramref name="path"/> (safetensors, keyed by parameter name).</summary>
    public void SaveMasters(string path) =>
        SafeTensors.SafeTensorsWriter.Write(path, _pairs.Select(p => new KeyValuePair<string, Tensor>(p.Name, p.Host)));

    /// <summary>Reads the fp32 copies back from <paramref name="path"/> (after <see cref="ParametersToHost"/>, which
    /// they replace); every trainable parameter must be there with its shape.</summary>
    public void LoadMasters(string path)
    {
        using var noGrad = no_grad();
        using var file = SafeTensors.SafeTensorsFile.Open(path);
        foreach (var (name, _, host) in _pairs)
        {
            if (!file.Tensors.ContainsKey(name))
                throw new LoraException($"{path}: no master weight \"{name}\" for this trainable parameter (the checkpoint was written by a run training other parameters).");
            using var saved = file.Load(name, ScalarType.Float32, host.device);
            if (!saved.shape.SequenceEqual(host.shape))
                throw new LoraException($"{path}: master weight \"{name}\" is ({string.Join(", ", saved.shape)}), this parameter is ({string.Join(", ", host.shape)}).");
            host.copy_(saved);
        }
    }

    private readonly Device _host;

    /// <summary>The host copy of <paramref name="device"/>.</summary>
    public Parameter HostOf(Parameter device) =>
        _pairs.First(p => ReferenceEquals(p.Device, device)).Host;

    /// <summary>Hands the device gradients to the host copies and frees them on the device.</summary>
    public void GradientsToHost()
    {
        using var noGrad = no_grad();
        foreach (var (_, device, host) in _pairs)
        {
            // Each .grad read is a new handle holding the tensor: dispose them, or the device gradient set to null below
            // would stay allocated until the GC finalizes the handle.
            using var grad = device.grad;
            if (grad is null)
            {
                host.grad = null;
                continue;
            }

            using var onHost = grad.to(ScalarType.Float32, _host, copy: true);
            using var existing = host.grad;
            if (existing is not null)
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
        foreach (var (_, device, host) in _pairs)
            device.copy_(host);
    }

    /// <summary>Copies the model's parameters into the host copies (after they were loaded from a checkpoint).</summary>
    public void ParametersToHost()
    {
        using var noGrad = no_grad();
        foreach (var (_, device, host) in _pairs)
            host.copy_(device);
    }

    public void Dispose()
    {
        foreach (var (_, _, host) in _pairs)
            host.Dispose();
    }
}
