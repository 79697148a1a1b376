using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Lora.Backend;
using TorchSharp;

namespace Lora.Cli.Commands;

/// <summary><c>lora info</c>: loads libtorch, picks the device and runs a matmul, so a user sees at once whether the
/// native backend works on this machine.</summary>
internal static class InfoCommand
{
    public static Command Create(TextWriter stdout)
    {
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var command = new Command("info", "Check the native backend: libtorch, devices, and a matmul on the chosen device.")
        {
            json,
            device,
        };
        command.SetAction(parse =>
        {
            var dev = TorchRuntime.Initialize(parse.GetValue(device)!);
            using var scope = torch.NewDisposeScope();
            const int n = 512;
            var a = torch.ones(n, n, device: dev);
            var sw = Stopwatch.StartNew();
            var check = torch.mm(a, a).sum().item<float>(); // every entry is n, so the sum is n³
            sw.Stop();
            var report = new
            {
                torchsharp = typeof(torch).Assembly.GetName().Version?.ToString(),
                libtorch_from = TorchRuntime.PreloadedFrom ?? "application (libtorch package)",
                device = dev.ToString(),
                cuda_available = TorchRuntime.CudaAvailable,
                cuda_devices = TorchRuntime.CudaAvailable ? torch.cuda.device_count() : 0,
                matmul_check = check == (float)n * n * n ? "ok" : $"wrong: {check}",
                matmul_ms = Math.Round(sw.Elapsed.TotalMilliseconds, 2),
            };
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(report));
            }
            else
            {
                stdout.WriteLine($"TorchSharp {report.torchsharp}; libtorch from {report.libtorch_from}");
                stdout.WriteLine($"device: {report.device} (CUDA available: {report.cuda_available}, devices: {report.cuda_devices})");
                stdout.WriteLine($"{n}x{n} matmul: {report.matmul_check} in {report.matmul_ms} ms");
            }

            return report.matmul_check == "ok" ? 0 : 2;
        });
        return command;
    }
}
