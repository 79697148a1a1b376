using System.Globalization;
using System.Text.Json;
using Lora;
using Lora.Backend;
using Lora.Models;
using Lora.Peft;
using Lora.Tuners.LoRA;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// The command-line settings shared by <c>train-throughput</c> and <c>generate</c>, spelled as the reference scripts
/// spell them (<c>../shared/gpu/peft_bench.py</c>, <c>generate_bench.py</c>: <c>--layers --hidden --inter --heads
/// --kv-heads --vocab --seq --batch --r --alpha --targets --gradient-checkpointing --steps --warmup</c>; generation:
/// <c>--batch --prompt --new</c>), plus ours: <c>--dtype auto|fp32|bf16|fp16</c>, <c>--device</c>, <c>--threads</c>, <c>--json</c>.
/// Defaults: the reference's (TinyLlama-1.1B shape) on CUDA; on the CPU a small Llama of the same proportions that a
/// 2-core machine trains in seconds (4 layers, hidden 512, intermediate 1376, 8/4 heads, vocab 8000, seq 256 × batch 4).
/// </summary>
internal sealed class BenchShape
{
    private readonly string[] _args;

    public BenchShape(string[] args, bool generation)
    {
        _args = args;
        Device = TorchRuntime.Initialize(Text("--device") ?? "auto");
        if (Text("--threads") is { } threads)
            set_num_threads(int.Parse(threads, CultureInfo.InvariantCulture)); // CPU: intra-op threads (libtorch default: one per core)
        var cuda = Device.type == DeviceType.CUDA;
        Layers = Int("--layers", cuda ? 22 : 4);
        Hidden = Int("--hidden", cuda ? 2048 : 512);
        Inter = Int("--inter", cuda ? 5632 : 1376);
        Heads = Int("--heads", cuda ? 32 : 8);
        KvHeads = Int("--kv-heads", 4);
        Vocab = Int("--vocab", cuda ? 32000 : 8000);
        Seq = Int("--seq", cuda ? 1024 : 256);
        Batch = Int("--batch", generation ? 1 : cuda ? 8 : 4);
        R = Int("--r", 16);
        Alpha = Int("--alpha", 32);
        Steps = Int("--steps", 10);
        Warmup = Int("--warmup", 3);
        Prompt = Int("--prompt", 128);
        New = Int("--new", cuda ? 256 : 32);
        Targets = Text("--targets") ?? "q_proj,v_proj";
        GradientCheckpointing = args.Contains("--gradient-checkpointing");
        Json = args.Contains("--json");
        DTypeName = Text("--dtype") ?? "auto";
        DType = DTypeName switch
        {
            "auto" => cuda ? ScalarType.BFloat16 : ScalarType.Float32,
            "fp32" or "float32" => ScalarType.Float32,
            "bf16" or "bfloat16" => ScalarType.BFloat16,
            "fp16" or "float16" => ScalarType.Float16,
            _ => throw new ArgumentException($"--dtype {DTypeName}: expected auto, fp32, bf16 or fp16."),
        };
        if (cuda && DType == ScalarType.Float32)
            backends.cuda.matmul.allow_tf32 = true; // what a fp32 run on Ampere+ should use (torch.backends.cuda.matmul.allow_tf32)
    }

    public Device Device { get; }

    public int Layers { get; }

    public int Hidden { get; }

    public int Inter { get; }

    public int Heads { get; }

    public int KvHeads { get; }

    public int Vocab { get; }

    public int Seq { get; }

    public int Batch { get; }

    public int R { get; }

    public int Alpha { get; }

    public int Steps { get; }

    public int Warmup { get; }

    public int Prompt { get; }

    public int New { get; }

    public string Targets { get; }

    public bool GradientCheckpointing { get; }

    public bool Json { get; }

    public string DTypeName { get; }

    public ScalarType DType { get; }

    public string? Text(string name) => Array.IndexOf(_args, name) is var i and >= 0 && i + 1 < _args.Length ? _args[i + 1] : null;

    public int Int(string name, int fallback) => Text(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    /// <summary>A Llama of this shape (HF <c>LlamaConfig</c>, untied head, as the reference scripts build it).</summary>
    public LlamaConfig Config(int maxPositions)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"lora-bench-config-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new
            {
                model_type = "llama", vocab_size = Vocab, hidden_size = Hidden, intermediate_size = Inter, num_hidden_layers = Layers,
                num_attention_heads = Heads, num_key_value_heads = KvHeads, max_position_embeddings = maxPositions, rms_norm_eps = 1e-6,
                tie_word_embeddings = false,
            }));
            return (LlamaConfig)ModelConfigLoader.Load(dir);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The benchmarks' model: a random Llama of this shape (seed 0) with a LoRA adapter of <c>--r</c>,
    /// <c>--alpha</c> on <c>--targets</c>, its base frozen. <c>NMatmul</c>: the base linear layers' weights (for MFU).</summary>
    public (LlamaForCausalLM Model, List<TorchSharp.Modules.Parameter> Trainable, long NMatmul) LoraLlama()
    {
        manual_seed(0);
        var model = new LlamaForCausalLM(Config(Seq), DType, Device);
        model.InitializeWeights();
        var nMatmul = model.modules().OfType<Modules.LinearLayer>().Sum(l => l.InFeatures * l.OutFeatures);
        var config = new LoraConfig { R = R, LoraAlpha = Alpha, TargetModules = TargetModules.FromNames(Targets.Split(',')) };
        PeftInjector.Inject(model, config);
        return (model, model.MarkTrainable(config).Select(p => p.Parameter).ToList(), nMatmul);
    }

    /// <summary>The reference's MFU convention (<c>peft_bench.py</c>): flops per token = 4·N_matmul (frozen weights get
    /// no weight gradient) + 6·layers·seq·hidden (attention).</summary>
    public double FlopsPerToken(long nMatmul) => 4.0 * nMatmul + 6.0 * Layers * Seq * Hidden;

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA)
            cuda.synchronize(device);
    }
}
