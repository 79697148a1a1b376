using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Lora.Kernels;
using Lora.Models;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// Where the time of <c>train-throughput</c>'s step goes (same model, adapter, loss and optimizer; its shape flags):
/// the step split into forward (to the final hidden states), fused head + loss (which also computes the hidden
/// states' gradient), backward and optimizer; and, run alone at the step's shapes, the work the MFU convention
/// credits: every base-layer matmul of the step (forward and input gradient; frozen weights get no weight gradient)
/// and the attention kernel (forward and backward) of every layer. What is left of the step is everything else:
/// LoRA's small matmuls, norms, RoPE, SwiGLU, residual sums, cross-entropy, autograd. It answers how far MFU can go at
/// a shape (with everything else free, MFU = the credited flops over the matmul and attention time), which the MFU
/// figure alone does not. Times are medians over the timed steps / repetitions; on CUDA each part is synchronised.
/// </summary>
internal static class StepBreakdown
{
    public static int Run(string[] args)
    {
        var s = new BenchShape(args, generation: false);
        var device = s.Device;
        var (model, trainable, nMatmul) = s.LoraLlama();
        using var owned = model;
        var bases = model.modules().OfType<Modules.LinearLayer>().ToList();
        model.train();
        using var optimizer = new Training.AdamW(trainable, lr: 2e-4);
        using var ids = randint(0, s.Vocab, [s.Batch, s.Seq], dtype: ScalarType.Int64, device: device);
        using var ceiling = new MatmulCeiling(device, s.DType);
        var head = (Modules.LinearLayer)model.OutputHead;
        var chunk = CausalLMLoss.ChunkTokens(device, head.OutFeatures);

        double Mark()
        {
            BenchShape.Synchronize(device);
            return Stopwatch.GetTimestamp();
        }

        double Ms(double from, double to) => (to - from) * 1e3 / Stopwatch.Frequency;

        var parts = new Dictionary<string, List<double>> { ["forward"] = [], ["head_loss"] = [], ["backward"] = [], ["optimizer"] = [], ["step"] = [] };
        for (var i = 0; i < s.Warmup + s.Steps; i++)
        {
            using var scope = NewDisposeScope();
            var t0 = Mark();
            var hidden = model.ForwardHidden(ids)!;
            var t1 = Mark();
            var loss = CausalLMLoss.FusedLinearTokenSum(hidden, head.Weight, head.Bias, ids, chunk) / (s.Batch * (s.Seq - 1.0));
            var t2 = Mark();
            loss.backward();
            GradientCheckpoint.ReleasePending();
            var t3 = Mark();
            optimizer.step();
            foreach (var p in trainable)
                p.grad = null;
            var t4 = Mark();
            if (i < s.Warmup)
                continue;
            parts["forward"].Add(Ms(t0, t1));
            parts["head_loss"].Add(Ms(t1, t2));
            parts["backward"].Add(Ms(t2, t3));
            parts["optimizer"].Add(Ms(t3, t4));
            parts["step"].Add(Ms(t0, t4));
            ceiling.Measure();
        }

        // The credited work alone, at the step's shapes: y = x·Wᵀ and ∂x = ∂y·W for every base layer (the head's over the
        // B·(T−1) shifted positions, as the fused loss runs it), and the attention kernel forward and backward.
        var tokens = (long)s.Batch * s.Seq;
        double MatmulsOnce()
        {
            using var scope = NewDisposeScope();
            var start = Mark();
            foreach (var layer in bases)
            {
                var rows = ReferenceEquals(layer, head) ? s.Batch * (s.Seq - 1L) : tokens;
                var x = ones(rows, layer.InFeatures, dtype: s.DType, device: device);
                var gy = ones(rows, layer.OutFeatures, dtype: s.DType, device: device);
                var w = layer.WeightOutIn();
                nn.functional.linear(x, w).Dispose();
                gy.matmul(w).Dispose();
            }

            return Ms(start, Mark());
        }

        var headDim = s.Hidden / s.Heads;
        using var q = randn([s.Batch, s.Heads, s.Seq, headDim], dtype: s.DType, device: device).requires_grad_();
        using var k = randn([s.Batch, s.KvHeads, s.Seq, headDim], dtype: s.DType, device: device).requires_grad_();
        using var v = randn([s.Batch, s.KvHeads, s.Seq, headDim], dtype: s.DType, device: device).requires_grad_();
        double AttentionOnce()
        {
            using var scope = NewDisposeScope();
            var start = Mark();
            for (var layer = 0; layer < s.Layers; layer++)
            {
                var y = Attention.GroupedQuery(q, k, v, null);
                y.backward([ones_like(y)]);
            }

            var ms = Ms(start, Mark());
            q.grad = null;
            k.grad = null;
            v.grad = null;
            return ms;
        }

        var matmuls = new List<double>();
        var attention = new List<double>();
        for (var i = 0; i < 2 + s.Steps; i++)
        {
            var m = MatmulsOnce();
            var a = AttentionOnce();
            if (i < 2)
                continue;
            matmuls.Add(m);
            attention.Add(a);
        }

        var step = BenchShape.Median(parts["step"]);
        var matmulMs = BenchShape.Median(matmuls);
        var attentionMs = BenchShape.Median(attention);
        var flopsPerStep = s.FlopsPerToken(nMatmul) * tokens;
        var result = new Dictionary<string, object?>
        {
            ["system"] = "lora-dotnet",
            ["device"] = device.ToString(),
            ["dtype"] = s.DType.ToString(),
            ["layers"] = s.Layers, ["hidden"] = s.Hidden, ["inter"] = s.Inter, ["heads"] = s.Heads, ["kv_heads"] = s.KvHeads,
            ["vocab"] = s.Vocab, ["seq"] = s.Seq, ["batch"] = s.Batch, ["r"] = s.R, ["targets"] = s.Targets,
            ["kernels"] = FusedKernels.Enabled ? "fused" : "composite",
            ["threads"] = get_num_threads(),
            ["steps"] = s.Steps,
            ["step_ms"] = Math.Round(step, 1),
            ["forward_ms"] = Math.Round(BenchShape.Median(parts["forward"]), 1),
            ["head_loss_ms"] = Math.Round(BenchShape.Median(parts["head_loss"]), 1),
            ["backward_ms"] = Math.Round(BenchShape.Median(parts["backward"]), 1),
            ["optimizer_ms"] = Math.Round(BenchShape.Median(parts["optimizer"]), 1),
            ["base_matmuls_alone_ms"] = Math.Round(matmulMs, 1),
            ["attention_alone_ms"] = Math.Round(attentionMs, 1),
            ["everything_else_ms"] = Math.Round(step - matmulMs - attentionMs, 1),
            ["matmul_ceiling_tflops"] = Math.Round(ceiling.Best / 1e12, 4),
            ["base_matmuls_pct_of_ceiling"] = Math.Round(100 * 4.0 * nMatmul * tokens / (matmulMs / 1e3) / ceiling.Best, 1),
            ["mfu_pct"] = Math.Round(100 * flopsPerStep / (step / 1e3) / ceiling.Best, 1),
            ["mfu_pct_if_only_matmuls_and_attention"] = Math.Round(100 * flopsPerStep / ((matmulMs + attentionMs) / 1e3) / ceiling.Best, 1),
        };
        Console.WriteLine(s.Json
            ? JsonSerializer.Serialize(result)
            : string.Join(", ", result.Select(kv => $"{kv.Key} {Convert.ToString(kv.Value, CultureInfo.InvariantCulture)}")));
        return 0;
    }
}
