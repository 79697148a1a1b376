using System.Diagnostics;
using Lora.Backend;
using Lora.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

internal static class QuantSpeed
{
    public static int Run(string[] args)
    {
        TorchRuntime.Initialize("cpu");
        var w = randn([5632, 2048], ScalarType.BFloat16) * 0.02;
        void T(string what, Action a) { a(); var sw = Stopwatch.StartNew(); for (var i = 0; i < 3; i++) { using var s = NewDisposeScope(); a(); } Console.WriteLine($"{what}: {sw.Elapsed.TotalMilliseconds / 3:F1} ms"); }
        var flat = w.reshape(-1).to(ScalarType.Float32);
        var blocks = flat.view(-1, 64);
        var absmax = blocks.abs().amax([-1]);
        var scaled = (blocks * absmax.clamp_min(1e-38).reciprocal().view(-1, 1)).clamp(-1, 1).reshape(-1);
        var bounds = tensor(new float[15].Select((_, i) => (CodeTables.Nf4[i] + CodeTables.Nf4[i + 1]) / 2).ToArray());
        T("to fp32", () => w.reshape(-1).to(ScalarType.Float32));
        T("absmax", () => blocks.abs().amax([-1]));
        T("scale+clamp", () => (blocks * absmax.clamp_min(1e-38).reciprocal().view(-1, 1)).clamp(-1, 1).reshape(-1));
        T("bucketize", () => bucketize(scaled, bounds, true, false));
        var q = bucketize(scaled, bounds, true, false);
        T("pack", () => { var p = q.to(ScalarType.Byte).view(-1, 2); var r = p.select(1, 0) * 16 + p.select(1, 1); });
        T("Quantize4Bit total", () => Blockwise.Quantize4Bit(w, QuantizationType.Nf4, 64));
        using var fw = FourBitWeight.Quantize(w, QuantizationType.Nf4, 64, true);
        T("Dequantize", () => fw.Dequantize());
        var packed = fw.Packed;
        var table = randn([256, 2]);
        T("to int32", () => packed.reshape(-1).to(ScalarType.Int32));
        var i32 = packed.reshape(-1).to(ScalarType.Int32);
        var i64 = packed.reshape(-1).to(ScalarType.Int64);
        T("index_select i32", () => table.index_select(0, i32));
        T("index_select i64", () => table.index_select(0, i64));
        var vals = table.index_select(0, i64).view(-1);
        var scales = fw.BlockScales();
        T("scale mul", () => (vals.view(-1, 64) * scales.view(-1, 1)).view(-1));
        T("to bf16", () => vals.to(ScalarType.BFloat16));
        T("matmul 512 tokens", () => randn([512, 2048], ScalarType.BFloat16).matmul(w.t()));
        return 0;
    }
}
