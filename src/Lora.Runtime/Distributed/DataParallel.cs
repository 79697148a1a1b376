using System.Globalization;
using System.Runtime.InteropServices;
using Lora.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Distributed;

/// <summary>How gradients of CUDA tensors are summed across ranks (CPU tensors always go through MPI).</summary>
public enum CollectiveBackend
{
    /// <summary>NCCL for CUDA tensors when <c>libnccl.so.2</c> is found, otherwise MPI through host memory (with a notice).</summary>
    Auto,

    /// <summary>MPI for everything; CUDA tensors are copied to the host, reduced and copied back.</summary>
    Mpi,

    /// <summary>NCCL for CUDA tensors; an error when NCCL is not found.</summary>
    Nccl,
}

/// <summary>
/// The process group of a data-parallel job launched by Open MPI's <c>mpirun</c>: this process's rank, the number of
/// ranks, and the collectives the <see cref="Training.Trainer"/> needs — in-place sums of tensors and scalars
/// (MPI on the CPU, NCCL on CUDA with its unique id broadcast over MPI), broadcasts and a barrier — each watched by a
/// timeout (<see cref="Timeout"/>) so that a rank that dies or hangs stops the whole job with an error instead of a
/// silent hang. MPI can be initialised once per process, so there is one group: <see cref="Current"/>.
/// <code>
///   mpirun -np 2 lora train ...                         the CLI: every rank joins with DataParallel.FromEnvironment()
///   new TrainingOptions { DataParallel = DataParallel.FromEnvironment() }     the same from C#
/// </code>
/// See docs/distributed.md.
/// </summary>
public sealed unsafe partial class DataParallel
{
    /// <summary>Seconds a collective may wait for the other ranks before the job is stopped (default 600).</summary>
    public const string TimeoutVariable = "LORA_DIST_TIMEOUT";

    /// <summary>The default <see cref="Timeout"/>: ten minutes, as PyTorch's NCCL process groups.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);

    /// <summary>The least time the start-up checks (<see cref="EnsureSameOnAllRanks"/>) wait, whatever
    /// <see cref="Timeout"/> is: ranks reach them after loading the model and data, each at its own pace.</summary>
    public static readonly TimeSpan StartupTimeout = TimeSpan.FromMinutes(5);

    private static readonly Lock Gate = new();
    private static DataParallel? _current;
    private static delegate* unmanaged<nint, nint> _tensorData;

    private readonly MpiLibrary _mpi;
    private readonly CollectiveWatchdog _watchdog;
    private NcclLibrary? _nccl;
    private nint _ncclComm;
    private int _ncclDevice = -1;
    private bool _done;

    private DataParallel(MpiLibrary mpi, int threadLevel, TimeSpan timeout)
    {
        _mpi = mpi;
        Rank = mpi.Rank();
        WorldSize = mpi.Size();
        LocalRank = int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_RANK"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var local) ? local : Rank;
        LibraryVersion = mpi.LibraryVersion();
        ThreadLevel = threadLevel;
        // MPI_Abort from the watchdog's thread needs MPI_THREAD_MULTIPLE; without it the process exits, which mpirun
        // also turns into the end of the job.
        _watchdog = new CollectiveWatchdog(timeout, $"rank {Rank} of {WorldSize}",
            code => { if (ThreadLevel >= MpiLibrary.ThreadMultiple) AbortJob(code); else Posix.Exit(code); });
    }

    /// <summary>The group of this process, once <see cref="FromEnvironment"/> or <see cref="Initialize"/> made it.</summary>
    public static DataParallel? Current => _current;

    /// <summary>Whether this process was started by Open MPI's launcher (<c>OMPI_COMM_WORLD_SIZE</c> is set).</summary>
    public static bool LaunchedByMpirun => Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null;

    /// <summary>This process's rank, 0 … <see cref="WorldSize"/> − 1. Rank 0 alone logs and writes files.</summary>
    public int Rank { get; }

    /// <summary>Ranks in the job.</summary>
    public int WorldSize { get; }

    /// <summary>The rank among the processes on this machine (<c>OMPI_COMM_WORLD_LOCAL_RANK</c>): the GPU it uses.</summary>
    public int LocalRank { get; }

    /// <summary>True on rank 0.</summary>
    public bool IsRoot => Rank == 0;

    /// <summary>The MPI library (<c>MPI_Get_library_version</c>'s first line).</summary>
    public string LibraryVersion { get; }

    /// <summary>The MPI thread level provided (3 = MPI_THREAD_MULTIPLE).</summary>
    public int ThreadLevel { get; }

    /// <summary>The backend asked for (the trainer passes it to <see cref="PrepareFor"/>; <c>--dist-backend</c>).</summary>
    public CollectiveBackend Backend { get; set; } = CollectiveBackend.Auto;

    /// <summary>How CUDA tensors are reduced; set by <see cref="PrepareFor"/>.</summary>
    public CollectiveBackend CudaBackend { get; private set; } = CollectiveBackend.Mpi;

    /// <summary>How long one collective may wait for the other ranks before the job is stopped.</summary>
    public TimeSpan Timeout
    {
        get => _watchdog.Timeout;
        set => _watchdog.Timeout = value > TimeSpan.Zero ? value : throw new LoraException($"the distributed timeout must be > 0 (got {value.TotalSeconds} s).");
    }

    /// <summary>Said in the watchdog's error line (the trainer points at the last good checkpoint).</summary>
    public Func<string?>? TimeoutContext
    {
        get => _watchdog.Context;
        set => _watchdog.Context = value;
    }

    /// <summary>Joins the job when this process was launched by <c>mpirun</c>; null otherwise (a single process,
    /// unchanged behaviour).</summary>
    /// <param name="timeout">The collective timeout; default <c>LORA_DIST_TIMEOUT</c> seconds, else 10 minutes.</param>
    public static DataParallel? FromEnvironment(TimeSpan? timeout = null) => LaunchedByMpirun ? Initialize(timeout) : null;

    /// <summary>Initialises MPI (once per process) and returns the group; a process not launched by mpirun is a
    /// group of one.</summary>
    /// <exception cref="LoraException">Open MPI's library is missing, or the timeout variable is malformed.</exception>
    public static DataParallel Initialize(TimeSpan? timeout = null)
    {
        lock (Gate)
        {
            if (_current is { } existing)
            {
                if (timeout is { } t)
                    existing.Timeout = t;
                return existing;
            }

            var chosen = timeout ?? TimeoutFromEnvironment() ?? DefaultTimeout;
            var mpi = MpiLibrary.TryLoad(out var why) ?? throw new LoraException(why);
            if (mpi.Finalized)
                throw new LoraException("MPI was finalized in this process already; it cannot be initialised again.");
            // Open MPI's own SIGSEGV/SIGBUS handlers would take over the signals .NET turns into exceptions.
            Posix.SetDefault("OMPI_MCA_opal_signal", "");
            var level = mpi.InitThread();
            _current = new DataParallel(mpi, level, chosen);
            return _current;
        }
    }

    /// <summary>What <c>lora info</c> reports: whether libmpi and libnccl can be loaded, and their versions.</summary>
    public static DistributedSupport Probe()
    {
        var mpi = MpiLibrary.TryLoad(out var mpiWhy);
        string? mpiVersion = null;
        if (mpi is not null && _current is { } group)
            mpiVersion = group.LibraryVersion;
        var nccl = NcclLibrary.TryLoad(out var ncclWhy);
        string? ncclVersion = null;
        if (nccl is not null)
        {
            try
            {
                ncclVersion = nccl.Version();
            }
            catch (LoraException e)
            {
                ncclWhy = e.Message;
                nccl = null;
            }
        }

        return new DistributedSupport(mpi?.Path, mpiVersion, mpi is null ? mpiWhy : null, nccl?.Path, ncclVersion, nccl is null ? ncclWhy : null,
            LaunchedByMpirun, _current?.Rank, _current?.WorldSize);
    }

    /// <summary>Chooses how CUDA gradients are reduced on <paramref name="device"/> (NCCL or MPI through host memory);
    /// sets up the NCCL communicator (rank 0's unique id broadcast over MPI). Returns a notice for the user, or null.</summary>
    /// <exception cref="LoraException"><see cref="CollectiveBackend.Nccl"/> without NCCL, or NCCL on the CPU.</exception>
    public string? PrepareFor(Device device, CollectiveBackend backend)
    {
        if (device.type != DeviceType.CUDA)
        {
            if (backend == CollectiveBackend.Nccl)
                throw new LoraException("the NCCL backend reduces CUDA tensors; this run is on the CPU (use --dist-backend mpi or auto, or a CUDA device).");
            return null;
        }

        if (backend == CollectiveBackend.Mpi)
        {
            CudaBackend = CollectiveBackend.Mpi;
            return null;
        }

        var nccl = NcclLibrary.TryLoad(out var why);
        if (nccl is null)
        {
            if (backend == CollectiveBackend.Nccl)
                throw new LoraException(why);
            CudaBackend = CollectiveBackend.Mpi;
            return $"{why} Gradients are summed with MPI through host memory instead.";
        }

        InitNccl(nccl, device.index < 0 ? 0 : device.index);
        CudaBackend = CollectiveBackend.Nccl;
        return null;
    }

    /// <summary>Sums <paramref name="tensor"/> (contiguous) across ranks, in place: NCCL for CUDA tensors when
    /// prepared, otherwise MPI (CUDA tensors through a host copy).</summary>
    public void AllReduceSum(Tensor tensor, string what = "all-reduce")
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (WorldSize == 1)
            return;
        if (!tensor.is_contiguous())
            throw new ArgumentException("all-reduce needs a contiguous tensor.", nameof(tensor));
        if (tensor.device_type == DeviceType.CUDA && _ncclComm != 0)
        {
            var type = tensor.dtype switch
            {
                ScalarType.Float32 => NcclLibrary.Float32,
                ScalarType.Float64 => NcclLibrary.Float64,
                ScalarType.BFloat16 => NcclLibrary.BFloat16,
                _ => throw new ArgumentException($"NCCL all-reduce of {tensor.dtype} is not supported here.", nameof(tensor)),
            };
            using var watch = _watchdog.Watch($"{what} (NCCL, {tensor.numel()} values)");
            _nccl!.AllReduceSum(DataPointer(tensor), tensor.numel(), type, _ncclComm);
            torch.cuda.synchronize(); // the watchdog covers the wait for the other ranks, not just the launch
            return;
        }

        if (tensor.device_type != DeviceType.CPU)
        {
            using var host = tensor.cpu();
            AllReduceSum(host, what);
            tensor.copy_(host);
            return;
        }

        if (tensor.dtype is not (ScalarType.Float32 or ScalarType.Float64 or ScalarType.Int64))
        {
            using var wide = tensor.to(ScalarType.Float64);
            AllReduceSum(wide, what);
            tensor.copy_(wide);
            return;
        }

        var datatype = tensor.dtype switch
        {
            ScalarType.Float32 => _mpi.Float,
            ScalarType.Float64 => _mpi.Double,
            _ => _mpi.Int64,
        };
        var span = tensor.bytes;
        var elementSize = (int)tensor.ElementSize;
        using var watchMpi = _watchdog.Watch($"{what} (MPI, {tensor.numel()} values)");
        fixed (byte* data = span)
        {
            // MPI counts are ints: reduce in chunks below 2³¹ elements.
            const int chunk = 1 << 30;
            for (long first = 0, n = span.Length / elementSize; first < n; first += chunk)
                _mpi.AllReduce(data + first * elementSize, (int)Math.Min(chunk, n - first), datatype, _mpi.Sum);
        }
    }

    /// <summary>Sums <paramref name="values"/> across ranks, in place.</summary>
    public void AllReduceSum(Span<double> values, string what = "all-reduce")
    {
        if (WorldSize == 1 || values.IsEmpty)
            return;
        using var watch = _watchdog.Watch($"{what} (MPI, {values.Length} values)");
        fixed (double* data = values)
            _mpi.AllReduce(data, values.Length, _mpi.Double, _mpi.Sum);
    }

    /// <summary>Sums <paramref name="values"/> across ranks, in place.</summary>
    public void AllReduceSum(Span<long> values, string what = "all-reduce")
    {
        if (WorldSize == 1 || values.IsEmpty)
            return;
        using var watch = _watchdog.Watch($"{what} (MPI, {values.Length} values)");
        fixed (long* data = values)
            _mpi.AllReduce(data, values.Length, _mpi.Int64, _mpi.Sum);
    }

    /// <summary>The bytes of rank <paramref name="root"/>, on every rank (the length is broadcast first).</summary>
    public byte[] Broadcast(ReadOnlySpan<byte> data, int root = 0, string what = "broadcast")
    {
        if (WorldSize == 1)
            return data.ToArray();
        using var watch = _watchdog.Watch($"{what} (MPI, from rank {root})");
        long length = Rank == root ? data.Length : 0;
        _mpi.Broadcast(&length, 1, _mpi.Int64, root);
        var result = Rank == root ? data.ToArray() : new byte[length];
        if (length > 0)
        {
            fixed (byte* p = result)
                _mpi.Broadcast(p, checked((int)length), _mpi.Byte, root);
        }

        return result;
    }

    /// <summary>Every rank's <paramref name="mine"/>, indexed by rank, on rank 0 (null on the others).</summary>
    public byte[][]? GatherToRoot(byte[] mine, string what = "gather")
    {
        ArgumentNullException.ThrowIfNull(mine);
        var all = new byte[WorldSize][];
        for (var r = 0; r < WorldSize; r++)
            all[r] = Broadcast(r == Rank ? mine : [], r, what); // rank r sends, the others receive
        return IsRoot ? all : null;
    }

    /// <summary>Overwrites <paramref name="tensor"/> with rank <paramref name="root"/>'s values on every rank.</summary>
    public void Broadcast(Tensor tensor, int root = 0, string what = "broadcast")
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (WorldSize == 1)
            return;
        var staged = tensor.device_type != DeviceType.CPU || !tensor.is_contiguous();
        using var host = staged ? tensor.cpu().contiguous() : tensor.alias();
        var span = host.bytes;
        using (var watch = _watchdog.Watch($"{what} (MPI, from rank {root})"))
        {
            fixed (byte* p = span)
                _mpi.Broadcast(p, span.Length, _mpi.Byte, root);
        }

        if (staged)
            tensor.copy_(host);
    }

    /// <summary>Throws on every rank when <paramref name="text"/> (a description of what must agree: options, data,
    /// trainable parameters) is not the same as rank 0's; the message names the first line that differs.</summary>
    /// <exception cref="LoraException">Some rank's description differs from rank 0's.</exception>
    public void EnsureSameOnAllRanks(string what, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (WorldSize == 1)
            return;
        string rootText;
        using (_watchdog.Watch($"{what} check (waiting for every rank to start)", StartupTimeout))
            rootText = System.Text.Encoding.UTF8.GetString(Broadcast(System.Text.Encoding.UTF8.GetBytes(text), 0, $"{what} check"));
        var difference = rootText == text ? null : FirstDifference(rootText, text);
        Span<long> differing = [difference is null ? 0 : 1, difference is null ? 0 : 1L << Math.Min(Rank, 62)];
        AllReduceSum(differing, $"{what} check");
        if (differing[0] == 0)
            return;
        if (difference is not null)
            throw new LoraException($"rank {Rank} of {WorldSize}: the {what} differs from rank 0's ({difference}); every rank must run the same command on the same files.");
        var mask = differing[1];
        var ranks = Enumerable.Range(0, Math.Min(WorldSize, 63)).Where(r => (mask & (1L << r)) != 0);
        throw new LoraException($"rank {Rank} of {WorldSize}: the {what} of rank(s) {string.Join(", ", ranks)} differs from rank 0's (their errors say where); every rank must run the same command on the same files.");
    }

    /// <summary>Waits until every rank arrives.</summary>
    public void Barrier(string what = "barrier")
    {
        if (WorldSize == 1)
            return;
        using var watch = _watchdog.Watch(what);
        _mpi.Barrier();
    }

    /// <summary>Stops every process of the job (MPI_Abort with <paramref name="code"/>).</summary>
    public void AbortJob(int code)
    {
        if (_ncclComm != 0)
            _nccl!.Abort(_ncclComm);
        _mpi.Abort(code);
    }

    /// <summary>The end of a program that joined a job: MPI_Finalize when <paramref name="exitCode"/> is 0; otherwise,
    /// with other ranks, MPI_Abort, so they stop now instead of waiting for this one until their timeout. Returns
    /// <paramref name="exitCode"/>. Without a group it does nothing.</summary>
    public static int Finish(int exitCode)
    {
        lock (Gate)
        {
            if (_current is not { _done: false } group)
                return exitCode;
            group._done = true;
            if (exitCode != 0 && group.WorldSize > 1)
            {
                Console.Error.Flush();
                group.AbortJob(exitCode);
                return exitCode;
            }

            if (group._ncclComm != 0)
                group._nccl!.Destroy(group._ncclComm);
            group._watchdog.Dispose();
            group._mpi.FinalizeMpi();
            return exitCode;
        }
    }

    public override string ToString() => $"rank {Rank} of {WorldSize}";

    private static TimeSpan? TimeoutFromEnvironment()
    {
        if (Environment.GetEnvironmentVariable(TimeoutVariable) is not { Length: > 0 } text)
            return null;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : throw new LoraException($"{TimeoutVariable}='{text}': expected a number of seconds > 0.");
    }

    private static string FirstDifference(string expected, string actual)
    {
        var a = expected.Split('\n');
        var b = actual.Split('\n');
        for (var i = 0; i < Math.Max(a.Length, b.Length); i++)
        {
            var x = i < a.Length ? a[i] : "(nothing)";
            var y = i < b.Length ? b[i] : "(nothing)";
            if (x != y)
                return $"rank 0 has {Shorten(x)}, this rank has {Shorten(y)}";
        }

        return "they differ";
    }

    private static string Shorten(string line) => line.Length <= 200 ? line : line[..200] + "…";

    private void InitNccl(NcclLibrary nccl, int deviceIndex)
    {
        if (_ncclComm != 0)
        {
            if (deviceIndex != _ncclDevice)
                throw new LoraException($"the NCCL communicator of this rank is on cuda:{_ncclDevice}, not cuda:{deviceIndex}.");
            return;
        }

        CudaRuntime.SetDevice(deviceIndex);
        var id = NcclBootstrap.Share(this, IsRoot ? nccl.GetUniqueId() : default);
        using var watch = _watchdog.Watch("ncclCommInitRank");
        _ncclComm = nccl.CommInitRank(WorldSize, id, Rank);
        _nccl = nccl;
        _ncclDevice = deviceIndex;
    }

    private static nint DataPointer(Tensor tensor)
    {
        if (_tensorData == null)
        {
            // TorchSharp keeps THSTensor_data (at::Tensor::data_ptr) internal; its library is in the process already.
            var handle = Posix.AlreadyLoaded("libLibTorchSharp.so");
            if (handle == 0 && !NativeLibrary.TryLoad("LibTorchSharp", typeof(torch).Assembly, null, out handle))
                throw new LoraException("libLibTorchSharp is not loaded; initialise the backend first (TorchRuntime.Initialize).");
            _tensorData = (delegate* unmanaged<nint, nint>)NativeLibrary.GetExport(handle, "THSTensor_data");
        }

        return _tensorData(tensor.Handle);
    }
}

/// <summary>What <c>lora info</c> reports about data-parallel support.</summary>
/// <param name="MpiLibrary">The libmpi loaded, or null.</param>
/// <param name="MpiVersion">Its version line when this process joined a job (MPI is initialised), else null.</param>
/// <param name="MpiMissing">Why libmpi could not be loaded, or null.</param>
/// <param name="NcclLibrary">The libnccl loaded, or null.</param>
/// <param name="NcclVersion">ncclGetVersion, or null.</param>
/// <param name="NcclMissing">Why libnccl could not be loaded, or null.</param>
/// <param name="LaunchedByMpirun">Whether this process runs under mpirun.</param>
/// <param name="Rank">This process's rank when in a job.</param>
/// <param name="WorldSize">The job's size when in a job.</param>
public sealed record DistributedSupport(string? MpiLibrary, string? MpiVersion, string? MpiMissing, string? NcclLibrary, string? NcclVersion,
    string? NcclMissing, bool LaunchedByMpirun, int? Rank, int? WorldSize);
