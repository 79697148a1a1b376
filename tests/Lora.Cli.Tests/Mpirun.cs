using System.Diagnostics;
using System.Text;

namespace Lora.Cli.Tests;

/// <summary>Runs the <c>lora</c> tool of this test's output directory under Open MPI's <c>mpirun</c> on this machine.
/// CI installs Open MPI (.ci/run), so a missing <c>mpirun</c> fails the test instead of skipping it.</summary>
internal sealed class Mpirun : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private Mpirun(IEnumerable<string> mpirunArgs)
    {
        var mpirun = Find() ?? throw new Xunit.Sdk.XunitException(
            "mpirun was not found on PATH: install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev; .ci/run does).");
        var start = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Root in containers and CI; more ranks than cores on a 2-core machine.
        foreach (var a in (string[])["--allow-run-as-root", "--oversubscribe", .. mpirunArgs])
            start.ArgumentList.Add(a);
        start.Environment.Remove("OMPI_COMM_WORLD_SIZE"); // never inherit a job of our own
        Clock = Stopwatch.StartNew();
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_stdout) _stdout.Append(e.Data).Append('\n'); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.Append(e.Data).Append('\n'); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The tool the test project references (the apphost next to the tests).</summary>
    public static string Lora => Path.Combine(AppContext.BaseDirectory, "lora");

    public Stopwatch Clock { get; }

    public bool HasExited => _process.HasExited;

    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }

    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary><c>mpirun -np <paramref name="ranks"/> lora ARGS</c>, started.</summary>
    public static Mpirun Start(int ranks, params string[] args) => new(["-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), Lora, .. args]);

    /// <summary>An MPMD job: one rank per argument list (<c>mpirun -np 1 lora A : -np 1 lora B</c>).</summary>
    public static Mpirun StartEach(params string[][] perRank) =>
        new(perRank.SelectMany((args, i) => (string[])[.. (i > 0 ? (string[])[":"] : []), "-np", "1", Lora, .. args]));

    /// <summary>Runs to the end (at most <paramref name="timeout"/>) and returns the exit code.</summary>
    public static (int Code, string Stdout, string Stderr) Run(int ranks, TimeSpan timeout, params string[] args)
    {
        using var job = Start(ranks, args);
        var code = job.Wait(timeout);
        return (code, job.Stdout, job.Stderr);
    }

    public int Wait(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            _process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"mpirun did not finish within {timeout.TotalSeconds} s.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        }

        _process.WaitForExit(); // drains the output
        return _process.ExitCode;
    }

    /// <summary>The process id of rank <paramref name="rank"/> of this job (found by its environment and a marker in
    /// its command line, e.g. the output directory), waiting up to 30 s for it to appear.</summary>
    public static int RankProcess(int rank, string marker)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out var pid))
                    continue;
                try
                {
                    var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                    if (!cmdline.Contains(marker, StringComparison.Ordinal) || cmdline.StartsWith("mpirun", StringComparison.Ordinal) || cmdline.Contains("/mpirun", StringComparison.Ordinal))
                        continue;
                    var environ = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
                    if (environ.Contains($"OMPI_COMM_WORLD_RANK={rank}"))
                        return pid;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // gone, or not ours
                }
            }

            Thread.Sleep(50);
        }

        throw new Xunit.Sdk.XunitException($"rank {rank}'s process ({marker}) was not found.");
    }

    public void Dispose()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }

    private static string? Find() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "mpirun"))
            .FirstOrDefault(File.Exists);
}
