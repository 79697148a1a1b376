using Lora.Peft;
using Lora.Backend;
using Lora.Models;
using Lora.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Cli;

/// <summary>The model a command works on: base checkpoint on the chosen device and dtype, optionally with a PEFT
/// adapter loaded and merged.</summary>
internal sealed class ModelSession : IDisposable
{
    private ModelSession(CausalLM model, PeftConfig? adapter, torch.Device device)
    {
        Model = model;
        Adapter = adapter;
        Device = device;
    }

    public CausalLM Model { get; }

    public PeftConfig? Adapter { get; }

    public torch.Device Device { get; }

    public static ModelSession Open(string modelDir, string? adapterDir, bool merge, string device, string dtype, TextWriter warnings, QuantizationConfig? quantization = null)
    {
        // Cheap checks first: a wrong path is reported before the backend starts.
        if (!Directory.Exists(modelDir))
            throw new LoraException($"{modelDir}: model directory not found.");
        if (adapterDir is not null)
            PeftConfigFile.Read(adapterDir);
        var dev = TorchRuntime.Initialize(device, notice => warnings.WriteLine($"warning: {notice}"));
        if (quantization is not null && adapterDir is not null && PeftConfigFile.Read(adapterDir) is TunerConfig { ModulesToSave: { Count: > 0 } saved })
            quantization = quantization.Skipping(saved); // trained in full: they stay dense
        var model = CausalLM.FromPretrained(modelDir, ParseDType(dtype, dev), dev, quantization);
        try
        {
            PeftConfig? config = null;
            if (adapterDir is not null)
            {
                config = PeftAdapter.Load(model, adapterDir, warnings: w => warnings.WriteLine($"warning: {w}"));
                if (merge)
                    model.MergeAndUnload(warnings: w => warnings.WriteLine($"warning: {w}"));
            }
            else if (merge)
            {
                throw new LoraException("--merge needs --adapter DIR.");
            }

            model.eval();
            return new ModelSession(model, config, dev);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary><paramref name="text"/> as a dtype; <c>auto</c> is bf16 on CUDA and fp32 elsewhere.</summary>
    public static ScalarType ParseDType(string text, torch.Device device) =>
        text.Equals("auto", StringComparison.OrdinalIgnoreCase) ? (device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32) : ParseDType(text);

    public static ScalarType ParseDType(string text) => text.ToLowerInvariant() switch
    {
        "fp32" or "float32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "fp16" or "float16" => ScalarType.Float16,
        _ => throw new LoraException($"--dtype '{text}' is not one of auto, fp32, bf16, fp16."),
    };

    public void Dispose() => Model.Dispose();
}
