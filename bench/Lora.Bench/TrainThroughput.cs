using System.Diagnostics;
using System.Text.Json;
using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Backend;
using Lora.Models;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// LoRA training speed against the machine's own matmul ceiling, measured side by side in one run: first the best
/// fp32 (CPU) or bf16 (CUDA) matmul throughput at 2048³, then tokens/s of the training step (forward, HF causal-LM
/// loss, backward, AdamW on the adapters) of a random Llama. MFU uses the reference benchmark's convention
/// (../shared/gpu/peft_bench.py): flops/token = 4·N_matmul + 6·layers·seq·hidden, divided by the measured ceiling.
/// </summary>
internal static class TrainThroughput
{
    public static int Run(string[] args)
    {
        int Int(string name, int fallback) => Array.IndexOf(args, name) is var i and >= 0 ? int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture) : fallback;
        var layers = Int("--layers", 4);
        var hidden = Int("--hidden", 512);
        var inter = Int("--inter", 1376);
        var heads = Int("--heads", 8);
        var kvHeads = Int("--kv-heads", 4);
        var vocab = Int("--vocab", 8000);
        var seq = Int("--seq", 256);
        var batch = Int("--batch", 4);
        var r = Int("--r", 16);
        var steps = Int("--steps", 5);
        var targets = Array.IndexOf(args, "--targets") is var t and >= 0 ? args[t + 1] : "q_proj,v_proj";
        var device = TorchRuntime.Initialize(Array.IndexOf(args, "--device") is var d and >= 0 ? args[d + 1] : "auto");
        var dtype = device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32;

        var ceiling = MatmulCeiling(device, dtype);

        var dir = Path.Combine(Path.GetTempPath(), $"lora-bench-config-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new
        {
            model_type = "llama", vocab_size = vocab, hidden_size = hidden, intermediate_size = inter, num_hidden_layers = layers,
            num_attention_heads = heads, num_key_value_heads = kvHeads, max_position_embeddings = seq, rms_norm_eps = 1e-6,
            tie_word_embeddings = false,
        }));
        manual_seed(0);
        using var model = new LlamaForCausalLM((LlamaConfig)ModelConfigLoader.Load(dir), dtype, device);
        Directory.Delete(dir, recursive: true);
        model.InitializeWeights();
        var nMatmul = model.modules().OfType<Modules.LinearLayer>().Sum(l => l.InFeatures * l.OutFeatures);
        var config = new LoraConfig { R = r, LoraAlpha = 2 * r, TargetModules = TargetModules.FromNames(targets.Split(',')) };
        PeftInjector.Inject(model, config);
        var trainable = model.MarkTrainable(config).Select(p => p.Parameter).ToList();
        model.train();
        using var optimizer = optim.AdamW(trainable, lr: 2e-4);
        using var ids = randint(0, vocab, [batch, seq], dtype: ScalarType.Int64, device: device);

        void Step()
        {
            using var scope = NewDisposeScope();
            var (sum, tokens) = CausalLMLoss.Sum(model.Forward(ids), ids);
            (sum / tokens).backward();
            optimizer.step();
            optimizer.zero_grad();
        }

        for (var i = 0; i < 2; i++)
            Step();
        Synchronize(device);
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < steps; i++)
            Step();
        Synchronize(device);
        var tokensPerSecond = (double)batch * seq * steps / sw.Elapsed.TotalSeconds;
        var flopsPerToken = 4.0 * nMatmul + 6.0 * layers * seq * hidden;
        var mfu = flopsPerToken * tokensPerSecond / ceiling;
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            device = device.ToString(), dtype = dtype.ToString(), layers, hidden, inter, heads, kv_heads = kvHeads, vocab, seq, batch, r, targets,
            threads = torch.get_num_threads(),
            matmul_ceiling_gflops = Math.Round(ceiling / 1e9, 1),
            tokens_per_s = Math.Round(tokensPerSecond, 1),
            achieved_gflops = Math.Round(flopsPerToken * tokensPerSecond / 1e9, 1),
            mfu_vs_measured_ceiling = Math.Round(mfu, 4),
            trainable = model.TrainableParametersSummary(),
        }));
        return 0;
    }

    /// <summary>Best of several 2048³ matmuls, in FLOP/s.</summary>
    private static double MatmulCeiling(torch.Device device, ScalarType dtype)
    {
        const int n = 2048;
        using var a = randn(n, n, dtype: dtype, device: device);
        using var b = randn(n, n, dtype: dtype, device: device);
        var best = double.MaxValue;
        for (var i = 0; i < 6; i++)
        {
            Synchronize(device);
            var sw = Stopwatch.StartNew();
            using (var c = a.matmul(b))
                Synchronize(device);
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }

        return 2.0 * n * n * n / best;
    }

    private static void Synchronize(torch.Device device)
    {
        if (device.type == DeviceType.CUDA)
            torch.cuda.synchronize();
    }
}
