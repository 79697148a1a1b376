using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Lora.Backend;
using Lora.Distributed;
using TorchSharp;

namespace Lora.Cli.Commands;

/// <summary><c>lora info</c>: loads libtorch, picks the device and runs a matmul, so a user sees at once whether the
/// native backend works on this machine; reports whether MPI and NCCL (data-parallel training) were found, and under
/// <c>mpirun</c> checks the collectives across the ranks (rank 0 prints).</summary>
internal static class InfoCommand
{
    public static Command Create(TextWriter stdout)
    {
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var command = new Command("info", "Check the native backend: libtorch, devices, a matmul on the chosen device, and MPI/NCCL for data-parallel training.")
        {
            json,
            device,
        };
        command.SetAction(parse =>
        {
            var group = DataParallel.FromEnvironment();
            var dev = TorchRuntime.Initialize(parse.GetValue(device)!);
            using var scope = torch.NewDisposeScope();
            const int n = 512;
            var a = torch.ones(n, n, device: dev);
            var sw = Stopwatch.StartNew();
            var check = torch.mm(a, a).sum().item<float>(); // every entry is n, so the sum is n³
            sw.Stop();
            var support = DataParallel.Probe();
            var collectives = group?.CheckCollectives();
            var report = new
            {
                torchsharp = typeof(torch).Assembly.GetName().Version?.ToString(),
                libtorch_from = TorchRuntime.PreloadedFrom ?? "application (libtorch package)",
                device = dev.ToString(),
                cuda_available = TorchRuntime.CudaAvailable,
                cuda_devices = TorchRuntime.CudaAvailable ? torch.cuda.device_count() : 0,
                matmul_check = check == (float)n * n * n ? "ok" : $"wrong: {check}",
                matmul_ms = Math.Round(sw.Elapsed.TotalMilliseconds, 2),
                mpi = support.MpiLibrary,
                mpi_version = support.MpiVersion,
                mpi_missing = support.MpiMissing,
                nccl = support.NcclLibrary,
                nccl_version = support.NcclVersion,
                nccl_missing = support.NcclMissing,
                launched_by_mpirun = support.LaunchedByMpirun,
                world_size = group?.WorldSize,
                collective_check = collectives,
            };
            if (group is { IsRoot: false })
                stdout = TextWriter.Null;
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(report));
            }
            else
            {
                stdout.WriteLine($"TorchSharp {report.torchsharp}; libtorch from {report.libtorch_from}");
                stdout.WriteLine($"device: {report.device} (CUDA available: {report.cuda_available}, devices: {report.cuda_devices})");
                stdout.WriteLine($"{n}x{n} matmul: {report.matmul_check} in {report.matmul_ms} ms");
                stdout.WriteLine(support.MpiLibrary is { } mpi ? $"MPI: {mpi}{(support.MpiVersion is { } v ? $" ({v})" : string.Empty)}" : $"MPI: not found ({support.MpiMissing})");
                stdout.WriteLine(support.NcclLibrary is { } nccl ? $"NCCL: {nccl} (version {support.NcclVersion})" : $"NCCL: not found ({support.NcclMissing})");
                stdout.WriteLine(group is null
                    ? "data-parallel: not launched by mpirun (a single process)"
                    : $"data-parallel: {group.WorldSize} ranks; collectives: {collectives}");
            }

            return report.matmul_check == "ok" && collectives is null or "ok" ? 0 : 2;
        });
        return command;
    }
}
