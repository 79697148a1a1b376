namespace Lora.Distributed;

/// <summary>
/// Turns a hang into an error: every collective runs inside <see cref="Watch"/>, and a background thread that sees
/// one run longer than the timeout (a rank died without the launcher noticing, is stopped, deadlocked, or far
/// behind) writes one <c>error:</c> line naming the rank, the collective and the timeout to stderr and stops the
/// whole job (the abort action: MPI_Abort, which makes mpirun kill every rank; the process exits itself if
/// that returns). PyTorch's NCCL watchdog does the same with <c>ncclCommAbort</c>.
/// </summary>
internal sealed class CollectiveWatchdog : IDisposable
{
    /// <summary>The exit code a timed-out job ends with (mpirun passes it on).</summary>
    public const int TimeoutExitCode = 3;

    private readonly Lock _gate = new();
    private readonly Thread _thread;
    private readonly Action<int> _abort;
    private readonly string _who;
    private readonly CancellationTokenSource _stop = new();
    private readonly TextWriter? _error;
    private readonly bool _exitIfAbortReturns;
    private string? _current;
    private long _startedTicks;
    private TimeSpan _limit;
    private int _depth;

    /// <param name="timeout">How long one collective may take.</param>
    /// <param name="who">Named in the error line ("rank 1 of 4").</param>
    /// <param name="abort">Stops the job (MPI_Abort); given <see cref="TimeoutExitCode"/>.</param>
    /// <param name="error">Where the error line goes (stderr by default).</param>
    /// <param name="exitIfAbortReturns">End this process when <paramref name="abort"/> has not within 10 s.</param>
    public CollectiveWatchdog(TimeSpan timeout, string who, Action<int> abort, TextWriter? error = null, bool exitIfAbortReturns = true)
    {
        Timeout = timeout;
        _who = who;
        _abort = abort;
        _error = error;
        _exitIfAbortReturns = exitIfAbortReturns;
        _thread = new Thread(Run) { IsBackground = true, Name = "lora collective watchdog" };
        _thread.Start();
    }

    public TimeSpan Timeout { get; set; }

    /// <summary>What the error line adds (e.g. the last good checkpoint), asked when the watchdog fires.</summary>
    public Func<string?>? Context { get; set; }

    /// <summary>Marks <paramref name="what"/> as running until the returned scope is disposed; it may take
    /// <see cref="Timeout"/>, or <paramref name="atLeast"/> when that is longer (the start-up rendezvous, where ranks
    /// arrive after loading the model at their own pace).</summary>
    public Scope Watch(string what, TimeSpan atLeast = default)
    {
        lock (_gate)
        {
            if (_depth++ == 0)
            {
                _current = what;
                _startedTicks = Environment.TickCount64;
                _limit = atLeast > Timeout ? atLeast : Timeout;
            }
        }

        return new Scope(this);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _thread.Join(TimeSpan.FromSeconds(1));
        _stop.Dispose();
    }

    private void Leave()
    {
        lock (_gate)
        {
            if (--_depth == 0)
                _current = null;
        }
    }

    private void Run()
    {
        while (!_stop.Token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(Math.Clamp(Timeout.TotalMilliseconds / 20, 20, 1000))))
        {
            string? what;
            long elapsed;
            TimeSpan limit;
            lock (_gate)
            {
                what = _current;
                elapsed = Environment.TickCount64 - _startedTicks;
                limit = _limit;
            }

            if (what is null || elapsed < limit.TotalMilliseconds)
                continue;
            var context = Context?.Invoke();
            var error = _error ?? Console.Error;
            error.WriteLine($"error: {_who}: {what} did not complete within {limit.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)} s: another rank died, " +
                $"hangs or is far behind; stopping the whole job.{(context is null ? string.Empty : " " + context)}");
            error.Flush();
            _abort(TimeoutExitCode);
            if (!_exitIfAbortReturns)
                return;
            Thread.Sleep(TimeSpan.FromSeconds(10));
            Posix.Exit(TimeoutExitCode); // MPI_Abort returned without ending this process
        }
    }

    public readonly struct Scope(CollectiveWatchdog owner) : IDisposable
    {
        public void Dispose() => owner.Leave();
    }
}
