using System.Diagnostics;
using System.Runtime.CompilerServices;
using Lora.Distributed;

namespace Lora.Runtime.Tests.Distributed;

/// <summary>The wiring of the MPI and NCCL bindings that runs without a GPU and without mpirun: library discovery and
/// its errors, symbol resolution, the NCCL unique id's layout and the watchdog. The collectives themselves are tested
/// under mpirun in Lora.Cli.Tests (DistributedTrainingTests); NCCL's all-reduce needs CUDA GPUs.</summary>
public sealed class DistributedWiringTests
{
    [Fact]
    public void Open_mpi_loads_and_its_predefined_handles_resolve()
    {
        // CI installs Open MPI (.ci/run): a missing libmpi fails here, loudly.
        var mpi = MpiLibrary.TryLoad(out var why);
        Assert.True(mpi is not null, why);
        Assert.NotEqual(0, mpi!.CommWorld);
        Assert.NotEqual(0, mpi.Float);
        Assert.NotEqual(0, mpi.Sum);
        Assert.False(mpi.Finalized);
    }

    [Fact]
    public void The_nccl_unique_id_is_passed_by_value_as_128_bytes()
    {
        // ncclUniqueId is struct { char internal[NCCL_UNIQUE_ID_BYTES = 128]; }, passed by value to ncclCommInitRank.
        Assert.Equal(128, Unsafe.SizeOf<NcclUniqueId>());
        var bytes = Enumerable.Range(0, 128).Select(i => (byte)i).ToArray();
        var id = NcclBootstrap.ToUniqueId(bytes);
        ReadOnlySpan<byte> roundTrip = id;
        Assert.Equal(bytes, roundTrip.ToArray());
        var e = Assert.Throws<LoraException>(() => NcclBootstrap.ToUniqueId(new byte[64]));
        Assert.Contains("128 bytes, not 64", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nccl_is_looked_for_like_libtorch_then_in_pytorchs_wheel_layout()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        Assert.Equal(
            [Path.Combine(dir, "libnccl.so.2"), "/env/site-packages/torch/lib/libnccl.so.2", "/env/site-packages/nvidia/nccl/lib/libnccl.so.2", "libnccl.so.2"],
            NcclLibrary.Candidates(dir, "/env/site-packages/torch/lib"));
        Assert.Equal(["/opt/nccl/libnccl.so.2.21.5", "libnccl.so.2"], NcclLibrary.Candidates("/opt/nccl/libnccl.so.2.21.5", null));
        Assert.Equal(["libnccl.so.2"], NcclLibrary.Candidates(null, null));
    }

    [Fact]
    public void A_missing_nccl_is_one_error_that_says_what_was_tried_and_how_to_fix_it()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-nccl", "libnccl.so.2");
        Assert.Null(NcclLibrary.TryLoad([missing], out var why));
        Assert.Contains($"{missing}: no such file", why, StringComparison.Ordinal);
        Assert.Contains("LORA_NCCL", why, StringComparison.Ordinal);
        Assert.Contains("LORA_LIBTORCH", why, StringComparison.Ordinal);

        // A library that loads but is not NCCL (libc here) is refused by its missing symbols, not called.
        Assert.Null(NcclLibrary.TryLoad(["libc.so.6"], out why));
        Assert.Contains("symbol ncclGetVersion not found; is it NCCL 2?", why, StringComparison.Ordinal);
    }

    [Fact]
    public void The_watchdog_stops_the_job_when_a_collective_outlives_the_timeout_and_only_then()
    {
        var error = new StringWriter();
        using var aborted = new ManualResetEventSlim();
        var abortCode = 0;
        using var watchdog = new CollectiveWatchdog(TimeSpan.FromMilliseconds(300), "rank 1 of 2", code => { abortCode = code; aborted.Set(); }, error, exitIfAbortReturns: false)
        {
            Context = () => "The last complete checkpoint is run/checkpoint-4.",
        };

        using (watchdog.Watch("quick all-reduce"))
            Thread.Sleep(50);
        // The start-up rendezvous may take longer than the timeout.
        using (watchdog.Watch("start-up check", atLeast: TimeSpan.FromSeconds(5)))
            Thread.Sleep(700);
        Assert.False(aborted.IsSet, error.ToString());

        var clock = Stopwatch.StartNew();
        using (watchdog.Watch("all-reduce of 12 gradient tensors (MPI, 18688 values)"))
            Assert.True(aborted.Wait(TimeSpan.FromSeconds(10)), "the watchdog did not fire");
        Assert.InRange(clock.Elapsed.TotalMilliseconds, 250, 5000);
        Assert.Equal(CollectiveWatchdog.TimeoutExitCode, abortCode);
        Assert.Equal("error: rank 1 of 2: all-reduce of 12 gradient tensors (MPI, 18688 values) did not complete within 0.3 s: another rank died, hangs or is far behind; " +
            "stopping the whole job. The last complete checkpoint is run/checkpoint-4.", error.ToString().Trim());
    }
}
