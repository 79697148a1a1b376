using System.Diagnostics;
using Lora.Backend;
using Lora.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// Where the time of the 4-bit kernels goes on this machine, beside a matmul of the same weight: quantizing and
/// dequantizing one TinyLlama MLP weight (5632 × 2048, bf16), each stage timed alone (mean of 3 after a warm-up).
/// </summary>
internal static class QuantSpeed
{
    public static int Run(string[] args)
    {
        TorchRuntime.Initialize(LoadMemory.Arg(args, "--device") ?? "cpu");
        using var scope = NewDisposeScope();
        var w = randn([5632, 2048], ScalarType.BFloat16) * 0.02;
        void Time(string what, Action action)
        {
            action();
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < 3; i++)
            {
                using var inner = NewDisposeScope();
                action();
            }

            Console.WriteLine($"{what,-34} {sw.Elapsed.TotalMilliseconds / 3,8:F1} ms");
        }

        var blocks = w.reshape(-1).to(ScalarType.Float32).view(-1, 64);
        var absmax = blocks.abs().amax([-1]);
        var scaled = (blocks * absmax.clamp_min(1e-38).reciprocal().view(-1, 1)).clamp(-1, 1).reshape(-1);
        var bounds = tensor(Enumerable.Range(0, 15).Select(i => (CodeTables.Nf4[i] + CodeTables.Nf4[i + 1]) / 2).ToArray());
        var q = bucketize(scaled, bounds, true, false);
        Console.WriteLine($"weight {string.Join("x", w.shape)} {w.dtype}, {get_num_threads()} threads");
        Time("quantize: to fp32", () => w.reshape(-1).to(ScalarType.Float32));
        Time("quantize: block absmax", () => blocks.abs().amax([-1]));
        Time("quantize: scale and clamp", () => (blocks * absmax.clamp_min(1e-38).reciprocal().view(-1, 1)).clamp(-1, 1));
        Time("quantize: bucketize", () => bucketize(scaled, bounds, true, false));
        Time("quantize: pack", () => { var p = q.to(ScalarType.Byte).view(-1, 2); _ = p.select(1, 0) * 16 + p.select(1, 1); });
        Time("quantize: total (NF4)", () => Blockwise.Quantize4Bit(w, QuantizationType.Nf4, 64));
        using var nested = FourBitWeight.Quantize(w, QuantizationType.Nf4, 64, doubleQuant: true);
        Time("dequantize (NF4 + double quant)", () => nested.Dequantize());
        Time("matmul, 512 tokens (bf16)", () => randn([512, 2048], ScalarType.BFloat16).matmul(w.t()));
        return 0;
    }
}
