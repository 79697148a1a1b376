using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Lora.Peft;
using Lora.SafeTensors;
using TorchSharp;
using static Lora.Cli.Tests.CliFixtures;

namespace Lora.Cli.Tests;

/// <summary>
/// <c>mpirun -np 2 lora train</c> on this machine's CPU (Open MPI): the loss trace and the adapter equal a single
/// process reading the same global batch (2 ranks × 2 per device × accumulation A = one process with accumulation 2A),
/// for LoRA and for a QLoRA (NF4) base; a resumed job equals the uninterrupted one; a killed or hung rank ends the job
/// with an error within the timeout; ranks with different options refuse to start.
/// <para>
/// With A = 1 the reduction order is the single process's (its gradient is g₀ + g₁, the all-reduce's too), so the
/// runs are bitwise equal. With A = 2 the sum is (g₀ + g₂) + (g₁ + g₃) against ((g₀ + g₁) + g₂) + g₃: the loss trace
/// agrees to 1e-6; AdamW divides each gradient element by its own running RMS, so an element whose gradient is near
/// zero — its last bits decided by that rounding — moves the adapter weight by up to the learning rate either way, and
/// the adapters agree to a looser bound (measured: 4e-4 of a tensor's largest weight at lr 1e-3 after 4 steps).
/// </para>
/// </summary>
public sealed class DistributedTrainingTests
{
    private static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(120);

    /// <summary>Nine records: with 2 per micro-batch an epoch has 5 micro-batches, so the second step of each epoch
    /// has one micro-batch and rank 1 nothing to compute (it still joins the all-reduce).</summary>
    private static string Data(string dir)
    {
        var records = new[] { ("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red"), ("sun", "yellow"), ("sea", "blue"), ("night", "dark"), ("milk", "white") }
            .Select(p => new { instruction = $"Color of {p.Item1}?", input = "", output = p.Item2 });
        var path = Path.Combine(dir, "colors.json");
        File.WriteAllText(path, JsonSerializer.Serialize(records));
        return path;
    }

    private static string[] Train(string model, string data, string outDir, int gradAccum, params string[] more) =>
        ["train", "--model", model, "--data", data, "--out", outDir, "--device", "cpu", "--batch-size", "2", "--grad-accum", gradAccum.ToString(CultureInfo.InvariantCulture),
         "--targets", "all-linear", "--lora-dropout", "0", "--logging-steps", "1", .. (more.Contains("--learning-rate") ? more : [.. more, "--learning-rate", "1e-2"])];

    private static List<double> Losses(string outDir) =>
        File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.TryGetProperty("loss", out _)).Select(r => r.GetProperty("loss").GetDouble()).ToList();

    private static void SameTrace(List<double> expected, List<double> actual, double rtol)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= rtol * Math.Abs(expected[i]), $"step {i + 1}: loss {actual[i]:R} vs single process {expected[i]:R}");
    }

    /// <summary>Every tensor of the two adapters within max|a − b| ≤ rtol · max|b|.</summary>
    private static void SameAdapter(string expectedDir, string actualDir, double rtol)
    {
        using var a = SafeTensorsFile.Open(Path.Combine(actualDir, PeftAdapter.WeightsFileName));
        using var b = SafeTensorsFile.Open(Path.Combine(expectedDir, PeftAdapter.WeightsFileName));
        Assert.Equal(b.Tensors.Keys.Order(), a.Tensors.Keys.Order());
        foreach (var key in b.Tensors.Keys)
        {
            using var scope = torch.NewDisposeScope();
            var x = a.Load(key);
            var y = b.Load(key);
            var diff = (x - y).abs().max().item<float>();
            var scale = y.abs().max().item<float>();
            Assert.True(diff <= rtol * scale, $"{key}: max|a-b| {diff:G4} > {rtol} × {scale:G4}");
        }
    }

    [Fact]
    public void Two_ranks_equal_one_process_with_the_same_global_batch_and_resume_equals_the_uninterrupted_job()
    {
        var dir = TempDirectory();
        var model = ModelWithTokenizer("llama_qv");
        var data = Data(dir);
        var single = Path.Combine(dir, "single");
        var (code, _, stderr) = Run(Train(model, data, single, gradAccum: 2, "--max-steps", "6", "--save-steps", "0"));
        Assert.True(code == 0, stderr);

        var parallel = Path.Combine(dir, "parallel");
        var (mpiCode, stdout, mpiErr) = Mpirun.Run(2, JobTimeout, Train(model, data, parallel, gradAccum: 1, "--max-steps", "6", "--save-steps", "3"));
        Assert.True(mpiCode == 0, mpiErr + stdout);
        // Rank 0 alone prints; it says how the global batch is made.
        Assert.Contains("data-parallel: 2 ranks (Open MPI v", stdout, StringComparison.Ordinal);
        Assert.Contains("global batch 2 × 2 × 1 = 4", stdout, StringComparison.Ordinal);
        Assert.Single(stdout.Split('\n'), l => l.StartsWith("done: 6 steps", StringComparison.Ordinal));

        // Bitwise: same micro-batches, same reduction order (every third step rank 1 has no micro-batch and adds zeros).
        var expected = Losses(single);
        Assert.Equal(6, expected.Count);
        Assert.Equal(expected, Losses(parallel));
        Assert.Equal(File.ReadAllBytes(Path.Combine(single, PeftAdapter.WeightsFileName)), File.ReadAllBytes(Path.Combine(parallel, PeftAdapter.WeightsFileName)));
        // Each rank's generator goes into the checkpoint.
        Assert.True(File.Exists(Path.Combine(parallel, "checkpoint-3", "rng_state_1.bin")));
        Assert.Equal(2, JsonDocument.Parse(File.ReadAllText(Path.Combine(parallel, "trainer_state.json"))).RootElement.GetProperty("world_size").GetInt32());

        // As if the job had died after checkpoint-3: both ranks resume from it and end where the uninterrupted job did.
        var straightLosses = Losses(parallel);
        var straightAdapter = File.ReadAllBytes(Path.Combine(parallel, PeftAdapter.WeightsFileName));
        Directory.Delete(Path.Combine(parallel, "checkpoint-6"), recursive: true);
        File.Delete(Path.Combine(parallel, PeftAdapter.WeightsFileName));
        (mpiCode, stdout, mpiErr) = Mpirun.Run(2, JobTimeout, [.. Train(model, data, parallel, gradAccum: 1, "--max-steps", "6", "--save-steps", "3"), "--resume"]);
        Assert.True(mpiCode == 0, mpiErr + stdout);
        Assert.Contains("resumed from", stdout, StringComparison.Ordinal);
        Assert.Equal(straightLosses, Losses(parallel));
        Assert.Equal(straightAdapter, File.ReadAllBytes(Path.Combine(parallel, PeftAdapter.WeightsFileName)));

        // A single process cannot resume a two-rank checkpoint: its global batch would differ.
        (code, _, stderr) = Run([.. Train(model, data, parallel, gradAccum: 1, "--max-steps", "6", "--save-steps", "3"), "--resume"]);
        Assert.Equal(1, code);
        Assert.Contains("written by a run of 2 rank(s), this run has 1", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_ranks_accumulating_on_a_qlora_nf4_base_equal_one_process()
    {
        var dir = TempDirectory();
        var model = ModelWithTokenizer("llama_qv");
        var data = Data(dir);
        var single = Path.Combine(dir, "single");
        string[] qlora = ["--quantize", "nf4", "--double-quant", "--max-steps", "4", "--save-steps", "0", "--seed", "7", "--learning-rate", "1e-3"];
        var (code, _, stderr) = Run(Train(model, data, single, gradAccum: 4, qlora));
        Assert.True(code == 0, stderr);
        var parallel = Path.Combine(dir, "parallel");
        var (mpiCode, stdout, mpiErr) = Mpirun.Run(2, JobTimeout, Train(model, data, parallel, gradAccum: 2, qlora));
        Assert.True(mpiCode == 0, mpiErr + stdout);
        Assert.Contains("global batch 2 × 2 × 2 = 8", stdout, StringComparison.Ordinal);
        Assert.Contains("nf4", stdout, StringComparison.OrdinalIgnoreCase);
        SameTrace(Losses(single), Losses(parallel), 1e-6);
        SameAdapter(single, parallel, 2e-3); // see the class comment
    }

    [Fact]
    public void A_killed_rank_ends_the_job_with_an_error_and_the_last_checkpoint_stays()
    {
        var dir = TempDirectory();
        var model = ModelWithTokenizer("llama_qv");
        var outDir = Path.Combine(dir, "killed");
        using var job = Mpirun.Start(2, Train(model, Data(dir), outDir, gradAccum: 1, "--max-steps", "100000", "--save-steps", "2", "--save-total-limit", "1", "--dist-timeout", "20"));
        WaitFor(() => File.Exists(Path.Combine(outDir, "checkpoint-2", "trainer_state.json")), job);
        var rank1 = Mpirun.RankProcess(1, outDir);
        var killedAt = Stopwatch.StartNew();
        Process.GetProcessById(rank1).Kill();
        var code = job.Wait(TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, code);
        Assert.True(killedAt.Elapsed < TimeSpan.FromSeconds(20), $"the job took {killedAt.Elapsed.TotalSeconds:F1} s to end");
        AssertLastCheckpointIsComplete(outDir);
    }

    [Fact]
    public void A_hung_rank_stops_the_job_with_a_clear_error_within_the_timeout()
    {
        var dir = TempDirectory();
        var model = ModelWithTokenizer("llama_qv");
        var outDir = Path.Combine(dir, "hung");
        using var job = Mpirun.Start(2, Train(model, Data(dir), outDir, gradAccum: 1, "--max-steps", "100000", "--save-steps", "2", "--save-total-limit", "1", "--dist-timeout", "3"));
        WaitFor(() => File.Exists(Path.Combine(outDir, "checkpoint-2", "trainer_state.json")), job);
        var rank1 = Mpirun.RankProcess(1, outDir);
        var stoppedAt = Stopwatch.StartNew();
        Assert.Equal(0, Kill(rank1, SigStop)); // alive but never reaching the next collective
        try
        {
            var code = job.Wait(TimeSpan.FromSeconds(30));
            Assert.NotEqual(0, code);
            Assert.True(stoppedAt.Elapsed < TimeSpan.FromSeconds(15), $"the job took {stoppedAt.Elapsed.TotalSeconds:F1} s to end");
            Assert.Matches(@"error: rank 0 of 2: .* did not complete within 3 s: another rank died, hangs or is far behind; stopping the whole job\. The last complete checkpoint is .*checkpoint-\d+\.", job.Stderr);
            AssertLastCheckpointIsComplete(outDir);
        }
        finally
        {
            _ = Kill(rank1, SigKill);
        }
    }

    [Fact]
    public void Ranks_with_different_options_refuse_to_start_and_info_checks_the_collectives()
    {
        var dir = TempDirectory();
        var model = ModelWithTokenizer("llama_qv");
        var data = Data(dir);
        var outDir = Path.Combine(dir, "mismatch");
        string[] rank0 = [.. Train(model, data, outDir, gradAccum: 1, "--max-steps", "2", "--save-steps", "0")];
        string[] rank1 = [.. rank0.Select(a => a == "1e-2" ? "2e-2" : a)];
        using (var job = Mpirun.StartEach(rank0, rank1))
        {
            Assert.NotEqual(0, job.Wait(JobTimeout));
            Assert.Contains("error: rank 1 of 2: the training configuration differs from rank 0's (rank 0 has options {", job.Stderr, StringComparison.Ordinal);
            Assert.Contains("\"LearningRate\":0.02", job.Stderr, StringComparison.Ordinal);
            Assert.Contains("error: rank 0 of 2: the training configuration of rank(s) 1 differs from rank 0's", job.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", job.Stderr, StringComparison.Ordinal); // no stack trace
            Assert.False(File.Exists(Path.Combine(outDir, PeftAdapter.WeightsFileName)));
        }

        var (code, stdout, stderr) = Mpirun.Run(2, JobTimeout, "info", "--device", "cpu", "--json");
        Assert.True(code == 0, stderr + stdout);
        // Rank 0 alone prints. (mpirun gives ranks a terminal, so .NET may put terminal set-up bytes before the JSON.)
        var line = stdout.Split('\n').Single(l => l.Contains('{', StringComparison.Ordinal));
        var report = JsonDocument.Parse(line[line.IndexOf('{', StringComparison.Ordinal)..]).RootElement;
        Assert.True(report.GetProperty("launched_by_mpirun").GetBoolean());
        Assert.Equal(2, report.GetProperty("world_size").GetInt32());
        Assert.Equal("ok", report.GetProperty("collective_check").GetString());
        Assert.StartsWith("Open MPI v", report.GetProperty("mpi_version").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Without_mpirun_info_reports_what_was_found_and_the_distributed_options_are_checked()
    {
        var (code, stdout, stderr) = Run("info", "--device", "cpu", "--json");
        Assert.True(code == 0, stderr);
        var report = JsonDocument.Parse(stdout).RootElement;
        Assert.False(report.GetProperty("launched_by_mpirun").GetBoolean());
        Assert.Equal(JsonValueKind.Null, report.GetProperty("world_size").ValueKind);
        Assert.Equal("libmpi.so.40", report.GetProperty("mpi").GetString()); // CI installs Open MPI
        // NCCL: a path and a version, or why not (no GPU stack on CI).
        Assert.True(report.GetProperty("nccl").ValueKind == JsonValueKind.String || report.GetProperty("nccl_missing").GetString()!.Contains("libnccl.so.2", StringComparison.Ordinal));

        var dir = TempDirectory();
        (code, stdout, stderr) = Run(Train(ModelWithTokenizer("llama_qv"), Data(dir), Path.Combine(dir, "out"), gradAccum: 1, "--max-steps", "1", "--dist-timeout", "0"));
        Assert.Equal(1, code);
        Assert.Equal("error: --dist-timeout must be > 0 seconds (got 0).\n", stderr);
        (code, _, stderr) = Run(Train(ModelWithTokenizer("llama_qv"), Data(dir), Path.Combine(dir, "out"), gradAccum: 1, "--max-steps", "1", "--dist-backend", "gloo"));
        Assert.Equal(1, code);
        Assert.Equal("error: --dist-backend 'gloo' is not one of auto, nccl, mpi.\n", stderr);
        Assert.Empty(stdout);
    }

    private const int SigKill = 9;
    private const int SigStop = 19;

    [DllImport("libc.so.6", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    private static void WaitFor(Func<bool> condition, Mpirun job)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > JobTimeout || job.HasExited)
                throw new Xunit.Sdk.XunitException($"{(job.HasExited ? "the job ended" : "timed out")} before the condition held.\nstdout:\n{job.Stdout}\nstderr:\n{job.Stderr}");
            Thread.Sleep(25);
        }
    }

    /// <summary>The newest checkpoint left behind is complete: its adapter loads and its state names its step.</summary>
    private static void AssertLastCheckpointIsComplete(string outDir)
    {
        var checkpoints = Directory.GetDirectories(outDir, "checkpoint-*");
        Assert.NotEmpty(checkpoints);
        var last = checkpoints.OrderBy(d => int.Parse(Path.GetFileName(d)["checkpoint-".Length..], CultureInfo.InvariantCulture)).Last();
        var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(last, "trainer_state.json"))).RootElement;
        Assert.Equal(Path.GetFileName(last), $"checkpoint-{state.GetProperty("global_step").GetInt32()}");
        using var adapter = SafeTensorsFile.Open(Path.Combine(last, PeftAdapter.WeightsFileName));
        Assert.NotEmpty(adapter.Tensors);
        Assert.True(File.Exists(Path.Combine(last, "rng_state_1.bin")));
    }
}
