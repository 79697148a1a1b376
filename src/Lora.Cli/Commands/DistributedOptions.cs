using System.CommandLine;
using System.Globalization;
using Lora.Backend;
using Lora.Distributed;
using TorchSharp;

namespace Lora.Cli.Commands;

/// <summary>The data-parallel options of the training commands (<c>--dist-timeout</c>, <c>--dist-backend</c>) and
/// how a command joins an <c>mpirun</c> job: rank 0 alone prints, each rank takes the GPU of its local rank.</summary>
internal sealed class DistributedOptions
{
    private readonly Option<double?> _timeout = new("--dist-timeout")
    {
        Description = $"Under mpirun: seconds a rank waits for the others in a collective before the whole job is stopped with an error (default ${DataParallel.TimeoutVariable}, else {DataParallel.DefaultTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)}).",
    };

    private readonly Option<string> _backend = new("--dist-backend")
    {
        Description = "Under mpirun: how CUDA gradients are summed: auto (NCCL when found, else MPI), nccl or mpi. CPU runs use MPI.",
        DefaultValueFactory = _ => "auto",
    };

    public IEnumerable<Option> All => [_timeout, _backend];

    /// <summary>Joins the job when launched by mpirun (null otherwise). Checks the options either way.</summary>
    public DataParallel? Join(ParseResult parse)
    {
        var backend = parse.GetValue(_backend)!.ToLowerInvariant() switch
        {
            "auto" => CollectiveBackend.Auto,
            "mpi" => CollectiveBackend.Mpi,
            "nccl" => CollectiveBackend.Nccl,
            var other => throw new LoraException($"--dist-backend '{other}' is not one of auto, nccl, mpi."),
        };
        TimeSpan? timeout = null;
        if (parse.GetValue(_timeout) is { } seconds)
        {
            timeout = seconds > 0 && double.IsFinite(seconds) ? TimeSpan.FromSeconds(seconds)
                : throw new LoraException($"--dist-timeout must be > 0 seconds (got {seconds.ToString(CultureInfo.InvariantCulture)}).");
        }
        var group = DataParallel.FromEnvironment(timeout);
        if (group is not null)
            group.Backend = backend;
        return group;
    }

    /// <summary>The device of this rank: with several ranks, <c>auto</c>/<c>cuda</c> (no index) mean the GPU of the
    /// local rank (modulo the visible GPUs).</summary>
    public static torch.Device DeviceFor(DataParallel? group, string spec, torch.Device initialized)
    {
        if (group is null || initialized.type != DeviceType.CUDA || DeviceSpec.Parse(spec).Index >= 0)
            return initialized;
        return new torch.Device(DeviceType.CUDA, group.LocalRank % Math.Max(1, torch.cuda.device_count()));
    }

    /// <summary>The line a data-parallel run prints first.</summary>
    public static string Describe(DataParallel group, int batchSize, int accumulation, torch.Device device) =>
        $"data-parallel: {group.WorldSize} ranks ({group.LibraryVersion}; {(device.type == DeviceType.CUDA ? $"CUDA gradients via {group.CudaBackend.ToString().ToUpperInvariant()}" : "gradients via MPI")}), " +
        $"global batch {group.WorldSize} × {batchSize} × {accumulation} = {group.WorldSize * batchSize * accumulation}, collective timeout {group.Timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s";
}
