using System.Diagnostics;
using System.Text.Json;
using Lora.Backend;
using Lora.Models;
using Lora.Quantization;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// Resident memory of a TinyLlama-shaped model (1.1B parameters, the load-memory checkpoint) loaded in bf16, NF4,
/// NF4 + double quantization and int8, each in a fresh process, against the prediction from bits per parameter:
/// the quantized linear layers at their stored bits/param plus everything else (embeddings, lm_head, norms) in bf16.
/// </summary>
internal static class QuantMemory
{

    private static readonly string[] Formats = ["bf16", "nf4", "nf4-dq", "int8"];

    public static int Run(string[] args)
    {
        var dir = LoadMemory.Arg(args, "--dir") ?? Path.Combine(Path.GetTempPath(), "lora-bench-tinyllama");
        if (LoadMemory.Arg(args, "--child") is { } format)
            return Child(dir, format);

        TorchRuntime.Initialize("cpu");
        if (!File.Exists(Path.Combine(dir, SafeTensorsCheckpoint.IndexFileName)))
            LoadMemory.Create(dir);
        var host = Environment.ProcessPath!;
        foreach (var f in Formats)
        {
            string[] childArgs = ["quant-memory", "--child", f, "--dir", dir];
            var psi = Path.GetFileNameWithoutExtension(host) == "dotnet"
                ? new ProcessStartInfo(host, [typeof(QuantMemory).Assembly.Location, .. childArgs])
                : new ProcessStartInfo(host, childArgs);
            psi.RedirectStandardOutput = true;
            using var child = Process.Start(psi)!;
            Console.Write(child.StandardOutput.ReadToEnd());
            child.WaitForExit();
            if (child.ExitCode != 0)
                return child.ExitCode;
        }

        return 0;
    }

    private static int Child(string dir, string format)
    {
        TorchRuntime.Initialize("cpu");
        var baseline = ProcessMemory.Read("RssAnon");
        var baselinePeak = ProcessMemory.Read("VmHWM");
        QuantizationConfig? config = format switch
        {
            "nf4" => new QuantizationConfig { Type = QuantizationType.Nf4, ComputeDType = ScalarType.BFloat16 },
            "nf4-dq" => QuantizationConfig.QLoRA,
            "int8" => QuantizationConfig.Int8,
            _ => null,
        };
        var sw = Stopwatch.StartNew();
        using var model = CausalLM.FromPretrained(dir, ScalarType.BFloat16, quantization: config);
        sw.Stop();
        var stored = model.parameters().Sum(p => p.numel() * p.ElementSize) + model.buffers().Sum(b => b.numel() * b.ElementSize);
        var quantized = ModelQuantizer.QuantizedLayers(model).ToList();
        var quantizedElements = quantized.Sum(l => l.Base.InFeatures * l.Base.OutFeatures);
        var bits = quantizedElements == 0 ? 16 : quantized.Sum(l => l.Base.BitsPerParameter * l.Base.InFeatures * l.Base.OutFeatures) / quantizedElements;
        // Prediction: every parameter in bf16, except the quantized weights at their bits/param.
        var allElements = model.parameters().Sum(p => p.numel()) + quantizedElements;
        var predicted = (allElements - quantizedElements) * 2.0 + quantizedElements * bits / 8;
        var added = (ProcessMemory.Read("RssAnon") - baseline) * 1048576.0;
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            format,
            load_seconds = Math.Round(sw.Elapsed.TotalSeconds, 1),
            parameters = allElements,
            quantized_layers = quantized.Count,
            quantized_bits_per_param = Math.Round(bits, 4),
            predicted_mib = Math.Round(predicted / 1048576, 0),
            tensor_mib = Math.Round(stored / 1048576.0, 0),
            rss_anon_added_mib = Math.Round(added / 1048576, 0),
            measured_over_predicted = Math.Round(added / predicted, 3),
            peak_added_mib = Math.Round(ProcessMemory.Read("VmHWM") - baselinePeak, 0),
        }));
        return 0;
    }
}
