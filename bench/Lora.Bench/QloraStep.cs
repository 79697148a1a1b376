using System.Diagnostics;
using System.Text.Json;
using Lora.Backend;
using Lora.Models;
using Lora.Peft;
using Lora.Quantization;
using Lora.Training;
using Lora.Tuners.LoRA;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// QLoRA step time against LoRA on the same dense model, side by side in one run: one random Llama, LoRA on every
/// linear layer (the QLoRA recipe), trained once on its dense weights and once on a 4-bit (or int8) copy, in
/// alternating rounds so both see the same machine state. Reports tokens/s of each and the ratio (goal ≥ 0.8 on the
/// CPU, ≥ 0.9 on a GPU).
/// </summary>
internal static class QloraStep
{
    public static int Run(string[] args)
    {
        int Int(string name, int fallback) => LoadMemory.Arg(args, name) is { } v ? int.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;
        var layers = Int("--layers", 4);
        var hidden = Int("--hidden", 512);
        var inter = Int("--inter", 1376);
        var vocab = Int("--vocab", 8000);
        var seq = Int("--seq", 256);
        var batch = Int("--batch", 4);
        var r = Int("--r", 16);
        var rounds = Int("--rounds", 3);
        var steps = Int("--steps", 3);
        var format = LoadMemory.Arg(args, "--quantize") ?? "nf4";
        var device = TorchRuntime.Initialize(LoadMemory.Arg(args, "--device") ?? "auto");
        var dtype = device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32;
        var quantization = (QuantizationTypes.Parse(format) ?? throw new ArgumentException(format)) switch
        {
            QuantizationType.Int8 => QuantizationConfig.Int8,
            var t => new QuantizationConfig { Type = t, DoubleQuant = true, ComputeDType = dtype },
        };

        var dir = Path.Combine(Path.GetTempPath(), $"lora-bench-config-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new
        {
            model_type = "llama", vocab_size = vocab, hidden_size = hidden, intermediate_size = inter, num_hidden_layers = layers,
            num_attention_heads = 8, num_key_value_heads = 4, max_position_embeddings = seq, rms_norm_eps = 1e-6, tie_word_embeddings = false,
        }));
        var modelConfig = (LlamaConfig)ModelConfigLoader.Load(dir);
        Directory.Delete(dir, recursive: true);

        (CausalLM Model, TorchSharp.Modules.AdamW Optimizer) Build(bool quantize)
        {
            manual_seed(0);
            var model = new LlamaForCausalLM(modelConfig, dtype, device);
            model.InitializeWeights();
            if (quantize)
            {
                ModelQuantizer.Quantize(model, quantization);
                KbitTraining.Prepare(model);
            }

            var config = new LoraConfig { R = r, LoraAlpha = 2 * r, LoraDropout = 0, TargetModules = TargetModules.AllLinear };
            PeftInjector.Inject(model, config);
            var trainable = model.MarkTrainable(config).Select(p => p.Parameter).ToList();
            model.train();
            return (model, optim.AdamW(trainable, lr: 2e-4));
        }

        var (lora, loraOpt) = Build(quantize: false);
        var (qlora, qloraOpt) = Build(quantize: true);
        using var ids = randint(0, vocab, [batch, seq], dtype: ScalarType.Int64, device: device);

        double Time(CausalLM model, TorchSharp.Modules.AdamW optimizer)
        {
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < steps; i++)
            {
                using var scope = NewDisposeScope();
                var (sum, tokens) = CausalLMLoss.Sum(model.Forward(ids), ids);
                (sum / tokens).backward();
                GradientCheckpoint.ReleasePending();
                optimizer.step();
                optimizer.zero_grad();
            }

            if (device.type == DeviceType.CUDA)
                cuda.synchronize();
            return (double)batch * seq * steps / sw.Elapsed.TotalSeconds;
        }

        Time(lora, loraOpt);   // warm-up
        Time(qlora, qloraOpt);
        double bestLora = 0, bestQlora = 0;
        for (var round = 0; round < rounds; round++)
        {
            bestLora = Math.Max(bestLora, Time(lora, loraOpt));
            bestQlora = Math.Max(bestQlora, Time(qlora, qloraOpt));
        }

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            device = device.ToString(), dtype = dtype.ToString(), quantization = quantization.ToString(), layers, hidden, inter, vocab, seq, batch, r,
            targets = "all-linear", threads = get_num_threads(),
            lora_tokens_per_s = Math.Round(bestLora, 1),
            qlora_tokens_per_s = Math.Round(bestQlora, 1),
            qlora_over_lora = Math.Round(bestQlora / bestLora, 3),
            trainable = qlora.TrainableParametersSummary(),
        }));
        lora.Dispose();
        qlora.Dispose();
        loraOpt.Dispose();
        qloraOpt.Dispose();
        return 0;
    }
}
