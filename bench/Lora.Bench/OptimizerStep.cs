using System.Diagnostics;
using System.Text.Json;
using Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// The optimizer and clipping alone, on the adapter parameters a LoRA of the given Llama shape trains (default: the
/// TinyLlama shape, q,v r 8: 88 tensors, 1.1 M values): TorchSharp's per-parameter AdamW + per-parameter clipping
/// (what the trainer used before issue 15) against the fused AdamW + multi-tensor clipping, alternating, best of N.
/// Launches per step are counted from the code (TorchSharp's AdamW: 9 ops per parameter; the old clipping: 3 per
/// parameter + 3) and reported beside the times.
/// </summary>
internal static class OptimizerStep
{
    public static int Run(string[] args)
    {
        var s = new BenchShape(args, generation: false);
        var r = s.Int("--r", 8);
        var headDim = s.Hidden / s.Heads;
        var kv = s.KvHeads * headDim;
        var shapes = new Dictionary<string, (long In, long Out)>
        {
            ["q_proj"] = (s.Hidden, s.Hidden), ["k_proj"] = (s.Hidden, kv), ["v_proj"] = (s.Hidden, kv), ["o_proj"] = (s.Hidden, s.Hidden),
            ["gate_proj"] = (s.Hidden, s.Inter), ["up_proj"] = (s.Hidden, s.Inter), ["down_proj"] = (s.Inter, s.Hidden),
        };
        List<Parameter> Make()
        {
            manual_seed(0);
            var list = new List<Parameter>();
            for (var l = 0; l < s.Layers; l++)
            {
                foreach (var t in s.Targets.Split(','))
                {
                    var (i, o) = shapes[t];
                    list.Add(new Parameter(randn([r, i], device: s.Device) * 0.01));
                    list.Add(new Parameter(randn([o, r], device: s.Device) * 0.01));
                }
            }

            return list;
        }

        var a = Make();
        var b = Make();
        using var reference = optim.AdamW(a, lr: 2e-4);
        using var fused = new Training.AdamW(b, lr: 2e-4);
        var rounds = s.Int("--rounds", 20);
        double bestOld = double.MaxValue, bestNew = double.MaxValue;
        for (var round = 0; round < rounds; round++)
        {
            foreach (var p in a.Concat(b))
                p.grad = randn_like(p);
            BenchShape.Synchronize(s.Device);
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                OldClip(a, 1.0);
                reference.step();
                reference.zero_grad();
            }

            BenchShape.Synchronize(s.Device);
            bestOld = Math.Min(bestOld, sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            using (var scope = NewDisposeScope())
            {
                using var norm = GradientClipping.ClipGlobalNormAsync(b, 1.0);
                fused.Step(null);
                fused.zero_grad();
            }

            BenchShape.Synchronize(s.Device);
            bestNew = Math.Min(bestNew, sw.Elapsed.TotalMilliseconds);
        }

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            device = s.Device.ToString(), layers = s.Layers, hidden = s.Hidden, r, targets = s.Targets, tensors = a.Count,
            values = a.Sum(p => p.numel()), rounds,
            per_parameter_ms = Math.Round(bestOld, 3), per_parameter_launches = 9 * a.Count + 3 * a.Count + 3 + a.Count,
            fused_ms = Math.Round(bestNew, 3), fused_launches = fused.KernelCalls / rounds + 1 + 8,
            speedup = Math.Round(bestOld / bestNew, 2),
        }));
        return 0;
    }

    /// <summary>The clipping the trainer used before issue 15 (per parameter: fp32 copy, norm; then scale each).</summary>
    private static void OldClip(IReadOnlyList<Parameter> parameters, double maxNorm)
    {
        using var noGrad = no_grad();
        var grads = parameters.Select(p => p.grad!).ToList();
        var norms = grads.Select(g => linalg.vector_norm(g.to(ScalarType.Float32), 2)).ToArray();
        var total = linalg.vector_norm(stack(norms), 2);
        _ = total.item<float>();
        var coefficient = (maxNorm / (total + 1e-6)).clamp_max(1.0);
        foreach (var g in grads)
            g.mul_(coefficient.to(g.dtype));
    }
}
