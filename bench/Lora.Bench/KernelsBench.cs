using System.Diagnostics;
using Lora.Kernels;
using Lora.Models;
using Lora.Modules;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// Forward + backward of each function in <c>Kernels/</c> against the composite ops it replaces, at one layer of the
/// bench's shape (<see cref="BenchShape"/>: B·T tokens, hidden, intermediate, heads, kv heads; fp32 unless
/// <c>--dtype</c>): the two variants alternate call by call (<see cref="FusedKernels.Enabled"/> flipped between
/// them; <see cref="FusedKernels.MemoryLeanOnCpu"/> on, so that the autograd functions run on the CPU), 3 warm-up rounds, then the median and the minimum of <c>--rounds</c> (default 40) rounds in milliseconds.
/// The upstream gradient is ones, allocated outside the timed region.
/// </summary>
internal static class KernelsBench
{
    public static int Run(string[] args)
    {
        var s = new BenchShape(args, generation: false);
        FusedKernels.MemoryLeanOnCpu = true; // the autograd functions, which run only on CUDA by default
        var rounds = s.Int("--rounds", 40);
        var (b, t, c, inter, heads, kv) = (s.Batch, s.Seq, s.Hidden, s.Inter, s.Heads, s.KvHeads);
        var d = c / heads;
        var dtype = s.DType;
        var device = s.Device;
        Console.WriteLine($"device {device}, dtype {dtype}, threads {get_num_threads()}, B·T {b}·{t}, hidden {c}, inter {inter}, heads {heads}/{kv}; ms per forward + backward, median · min of {rounds}");

        var x = randn([b, t, c], dtype: dtype, device: device).requires_grad_();
        using var norm = new RmsNorm(c, 1e-6, dtype, device);
        norm.Weight.requires_grad = false;
        Report("RMSNorm (frozen weight)", rounds, () => norm.call(x));

        var rope = new RotaryEmbedding(new RopeConfig(), (int)d);
        var (cos, sin) = rope.Compute(arange(t, device: device).unsqueeze(0).expand(b, t), dtype);
        var q = randn([b, heads, t, d], dtype: dtype, device: device).requires_grad_();
        Report("RoPE (queries)", rounds, () => RotaryEmbedding.Apply(q, cos, sin));

        var gate = randn([b, t, inter], dtype: dtype, device: device).requires_grad_();
        var up = randn([b, t, inter], dtype: dtype, device: device).requires_grad_();
        Report("SwiGLU gate (memory-lean)", rounds, () => FusedKernels.Enabled ? SwiGluFunction.Apply(gate, up) : nn.functional.silu(gate) * up);

        var qa = randn([b, heads, t, d], dtype: dtype, device: device).requires_grad_();
        var ka = randn([b, kv, t, d], dtype: dtype, device: device).requires_grad_();
        var va = randn([b, kv, t, d], dtype: dtype, device: device).requires_grad_();
        Report($"attention, GQA {heads}/{kv}", rounds, () => Attention.GroupedQuery(qa, ka, va, null));

        using var proj = new LinearLayer(c, c, hasBias: false, dtype, device);
        proj.Weight.requires_grad = false;
        proj.AddAdapter("default", new Tuners.LoRA.LoraAdapter(c, c, s.R, s.Alpha, init: Tuners.LoRA.LoraInit.Random, device: device));
        Report($"LoRA r {s.R} on {c}→{c}", rounds, () => proj.call(x));
        FusedKernels.Enabled = true;
        return 0;
    }

    private static void Report(string name, int rounds, Func<Tensor> f)
    {
        var times = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        for (var i = 0; i < rounds + 3; i++)
        {
            foreach (var fused in new[] { true, false })
            {
                FusedKernels.Enabled = fused;
                using var scope = NewDisposeScope();
                using var upstream = ones_like(f());
                BenchShape.Synchronize(upstream.device);
                var sw = Stopwatch.StartNew();
                f().backward([upstream]);
                BenchShape.Synchronize(upstream.device);
                var elapsed = sw.Elapsed.TotalMilliseconds;
                GradientCheckpoint.ReleasePending();
                if (i >= 3)
                    times[fused].Add(elapsed);
            }
        }

        static string Stat(List<double> v) => $"{v.Order().ElementAt(v.Count / 2),7:F2} · {v.Min(),6:F2}";
        var ratio = times[true].Order().ElementAt(rounds / 2) / times[false].Order().ElementAt(rounds / 2);
        Console.WriteLine($"  {name,-28} fused {Stat(times[true])}   composite {Stat(times[false])}   fused/composite (median) {ratio:F2}");
    }
}
