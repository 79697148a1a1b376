using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// LoRA training speed, like for like with <c>../shared/gpu/peft_bench.py</c> (same flags, same defaults on CUDA, same
/// step: forward, causal-LM loss on labels = input ids, backward, AdamW on the adapters, gradients dropped; same
/// warm-up and timed steps), on a random Llama. MFU uses the reference's convention: flops/token =
/// 4·N_matmul + 6·layers·seq·hidden, here divided by the matmul ceiling measured in this run in the compute dtype
/// (<see cref="MatmulCeiling"/>: best of measurements taken between the timed steps), and on CUDA also by 989 TFLOP/s
/// (H100-class dense bf16 peak) and by the reference's 790 TFLOP/s. Peak memory: <see cref="PeakMemory"/>.
/// <c>--json</c> prints one JSON object per run (one configuration per process).
/// </summary>
internal static class TrainThroughput
{
    public static int Run(string[] args)
    {
        var s = new BenchShape(args, generation: false);
        var device = s.Device;
        var optimizerKind = s.Text("--optimizer") ?? "fused";
        var lossKind = s.Text("--loss") ?? "fused"; // fused: head + cross-entropy chunked (CausalLMLoss.ModelTokenSum); logits: the whole batch's logits
        // fused: Kernels/ autograd functions, GQA attention, folded LoRA (the default); lean: also the memory-for-time
        // trades that run only on CUDA by default (FusedKernels.MemoryLeanOnCpu); composite: op by op.
        var kernels = s.Text("--kernels") ?? "fused";
        if (kernels is not ("fused" or "lean" or "composite"))
            throw new ArgumentException($"--kernels {kernels}: expected fused, lean or composite.");
        Kernels.FusedKernels.Enabled = kernels != "composite";
        Kernels.FusedKernels.MemoryLeanOnCpu = kernels == "lean";
        // --pack K: each row holds K examples of seq/K tokens (positions restart), attended padding-free (the trainer's
        // path for Llama) or, with --pack-attention mask, through the block-diagonal (B, 1, T, T) mask built on the device.
        var pack = s.Int("--pack", 1);
        var packAttention = s.Text("--pack-attention") ?? "free";
        if (pack < 1 || s.Seq % pack != 0 || packAttention is not ("free" or "mask"))
            throw new ArgumentException($"--pack {pack} --pack-attention {packAttention}: expected K dividing --seq and free or mask.");
        var (model, trainable, nMatmul) = s.LoraLlama();
        using var owned = model;
        model.GradientCheckpointing = s.GradientCheckpointing;
        model.train();
        using TorchSharp.Modules.AdamW optimizer = optimizerKind switch
        {
            "fused" => new Training.AdamW(trainable, lr: 2e-4),
            "torchsharp" => optim.AdamW(trainable, lr: 2e-4),
            _ => throw new ArgumentException($"--optimizer {optimizerKind}: expected fused or torchsharp."),
        };
        using var ids = randint(0, s.Vocab, [s.Batch, s.Seq], dtype: ScalarType.Int64, device: device);
        var exampleLength = s.Seq / pack;
        using var positions = pack == 1 ? null : arange(s.Seq).remainder(exampleLength).unsqueeze(0).expand(s.Batch, s.Seq).contiguous(); // host
        using var packedMask = pack == 1 || packAttention == "free" ? null
            : Data.PackedAttentionMask.FromSegments(arange(s.Seq).div(exampleLength, rounding_mode: RoundingMode.floor).unsqueeze(0).expand(s.Batch, s.Seq).to(device));
        using var ceiling = new MatmulCeiling(device, s.DType);
        var memory = new PeakMemory(device);

        Tensor Step()
        {
            using var scope = NewDisposeScope();
            // As the trainer: no read-back inside the step (the token count is known on the host).
            var sum = lossKind == "fused"
                ? CausalLMLoss.ModelTokenSum(model, ids, ids, packedMask, packedMask is null ? positions : positions?.to(device))
                : CausalLMLoss.TokenSum(model.Forward(ids, packedMask, packedMask is null ? positions : positions?.to(device)), ids);
            var loss = sum / (s.Batch * (s.Seq - 1.0));
            loss.backward();
            GradientCheckpoint.ReleasePending();
            optimizer.step();
            foreach (var p in trainable)
                p.grad = null; // zero_grad(set_to_none=True)
            return loss.detach().MoveToOuterDisposeScope();
        }

        for (var i = 0; i < s.Warmup; i++)
            Step().Dispose();
        BenchShape.Synchronize(device);
        ceiling.Measure();
        memory.Reset();
        var times = new List<double>();
        Tensor? last = null;
        for (var i = 0; i < s.Steps; i++)
        {
            BenchShape.Synchronize(device);
            var sw = Stopwatch.StartNew();
            last?.Dispose();
            last = Step();
            BenchShape.Synchronize(device);
            times.Add(sw.Elapsed.TotalSeconds);
            memory.Sample();
            ceiling.Measure(); // between the timed steps, never inside one
        }

        var peak = memory.Peak;
        var lossValue = last!.item<float>();
        last.Dispose();
        var stepSeconds = times.Average();
        var tokensPerStep = (double)s.Batch * s.Seq;
        var tokensPerSecond = tokensPerStep / stepSeconds;
        var flopsPerToken = s.FlopsPerToken(nMatmul);
        var achieved = flopsPerToken * tokensPerSecond;
        var cuda = device.type == DeviceType.CUDA;
        var result = new Dictionary<string, object?>
        {
            ["system"] = "lora-dotnet",
            ["device"] = device.ToString(),
            ["dtype"] = s.DType.ToString(),
            ["layers"] = s.Layers, ["hidden"] = s.Hidden, ["inter"] = s.Inter, ["heads"] = s.Heads, ["kv_heads"] = s.KvHeads,
            ["vocab"] = s.Vocab, ["seq"] = s.Seq, ["batch"] = s.Batch, ["r"] = s.R, ["alpha"] = s.Alpha, ["targets"] = s.Targets,
            ["grad_ckpt"] = s.GradientCheckpointing, ["warmup"] = s.Warmup, ["steps"] = s.Steps, ["optimizer"] = optimizerKind, ["loss_path"] = lossKind, ["kernels"] = kernels, ["pack"] = pack, ["pack_attention"] = pack == 1 ? null : packAttention,
            ["threads"] = get_num_threads(),
            ["n_matmul"] = nMatmul,
            ["trainable"] = trainable.Sum(p => p.numel()),
            ["step_ms"] = Math.Round(stepSeconds * 1e3, 2),
            ["step_ms_min"] = Math.Round(times.Min() * 1e3, 2),
            ["step_ms_median"] = Math.Round(BenchShape.Median(times) * 1e3, 2),
            ["step_ms_each"] = times.Select(t => Math.Round(t * 1e3, 1)).ToArray(),
            ["tokens_per_s"] = Math.Round(tokensPerSecond, 1),
            ["achieved_tflops"] = Math.Round(achieved / 1e12, 4),
            ["matmul_ceiling_tflops"] = Math.Round(ceiling.Best / 1e12, 4),
            ["ceiling_samples"] = ceiling.All.Count,
            ["mfu_pct"] = Math.Round(100 * achieved / ceiling.Best, 1),
            ["mfu_pct_best_step"] = Math.Round(100 * flopsPerToken * tokensPerStep / times.Min() / ceiling.Best, 1),
            ["mfu_pct_989"] = cuda ? Math.Round(100 * achieved / 989e12, 1) : null,
            ["mfu_pct_790"] = cuda ? Math.Round(100 * achieved / 790e12, 1) : null,
            ["peak_bytes"] = peak,
            ["peak_gib"] = Math.Round(peak / (double)(1L << 30), 3),
            ["baseline_bytes"] = memory.Baseline,
            ["step_extra_bytes"] = peak - memory.Baseline,
            ["peak_method"] = memory.Method,
            ["loss"] = Math.Round(lossValue, 4),
        };
        if (s.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(result));
        }
        else
        {
            Console.WriteLine(string.Join(", ", result.Select(kv => $"{kv.Key} {Convert.ToString(kv.Value, CultureInfo.InvariantCulture)}")));
        }

        return 0;
    }
}
