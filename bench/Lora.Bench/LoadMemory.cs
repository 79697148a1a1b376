using System.Diagnostics;
using System.Text.Json;
using Lora.Backend;
using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// Peak memory of loading a multi-GB sharded checkpoint, against its size on disk. Makes a TinyLlama-shaped
/// (1.1B parameters) random checkpoint in 1 GB shards once, then loads it in a fresh process and reports the
/// process's peak anonymous memory: tensors are read one by one from memory-mapped shards, so the peak should be
/// the model's own size plus runtime overhead, not model + file.
/// </summary>
internal static class LoadMemory
{
    public static int Run(string[] args)
    {
        var dir = Arg(args, "--dir") ?? Path.Combine(Path.GetTempPath(), "lora-bench-tinyllama");
        var dtype = (Arg(args, "--dtype") ?? "bf16") == "fp32" ? ScalarType.Float32 : ScalarType.BFloat16;
        if (args.Contains("--child"))
            return Child(dir, dtype);

        TorchRuntime.Initialize("cpu");
        if (!File.Exists(Path.Combine(dir, SafeTensorsCheckpoint.IndexFileName)))
            Create(dir);
        var fileBytes = Directory.GetFiles(dir, "*.safetensors").Sum(f => new FileInfo(f).Length);

        // Measure in a fresh process so nothing from creating the checkpoint is counted.
        string[] childArgs = ["load-memory", "--child", "--dir", dir, "--dtype", dtype == ScalarType.Float32 ? "fp32" : "bf16"];
        var host = Environment.ProcessPath!;
        var psi = Path.GetFileNameWithoutExtension(host) == "dotnet"
            ? new ProcessStartInfo(host, [typeof(LoadMemory).Assembly.Location, .. childArgs])
            : new ProcessStartInfo(host, childArgs);
        psi.RedirectStandardOutput = true;
        using var child = Process.Start(psi)!;
        var report = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        Console.WriteLine($"checkpoint: {dir}, {fileBytes / 1e9:F2} GB on disk ({Directory.GetFiles(dir, "*.safetensors").Length} shards)");
        Console.Write(report);
        return child.ExitCode;
    }

    private static int Child(string dir, ScalarType dtype)
    {
        TorchRuntime.Initialize("cpu");
        var baseline = ProcessMemory.Read("RssAnon");
        Console.WriteLine($"after libtorch start: {ProcessMemory.Snapshot()}");
        var sw = Stopwatch.StartNew();
        using (var ckpt = SafeTensorsCheckpoint.Open(dir))
            Console.WriteLine($"after opening the index and {ckpt.Keys.Count} headers: {ProcessMemory.Snapshot()}");
        using var model = CausalLM.FromPretrained(dir, dtype);
        sw.Stop();
        var modelBytes = model.parameters().Sum(p => p.numel() * p.ElementSize);
        Console.WriteLine($"after FromPretrained ({dtype}, {sw.Elapsed.TotalSeconds:F1} s): {ProcessMemory.Snapshot()}");
        Console.WriteLine($"model parameters: {modelBytes / 1048576.0:F0} MiB; anonymous memory added by loading: {ProcessMemory.Read("RssAnon") - baseline:F0} MiB");
        return 0;
    }

    internal static void Create(string dir)
    {
        Console.WriteLine($"creating a TinyLlama-shaped random checkpoint in {dir} ...");
        Directory.CreateDirectory(dir);
        var config = new
        {
            architectures = new[] { "LlamaForCausalLM" }, model_type = "llama", vocab_size = 32000, hidden_size = 2048,
            intermediate_size = 5632, num_hidden_layers = 22, num_attention_heads = 32, num_key_value_heads = 4,
            max_position_embeddings = 2048, rms_norm_eps = 1e-5, rope_theta = 10000.0, tie_word_embeddings = false,
            hidden_act = "silu", bos_token_id = 1, eos_token_id = 2, torch_dtype = "bfloat16",
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
        using var model = new LlamaForCausalLM((LlamaConfig)ModelConfigLoader.Load(dir), ScalarType.BFloat16);
        model.InitializeWeights();
        var tensors = model.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)).ToList();
        using (no_grad())
            SafeTensorsWriter.WriteCheckpoint(dir, tensors, maxShardBytes: 1L << 30);
    }

    internal static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
