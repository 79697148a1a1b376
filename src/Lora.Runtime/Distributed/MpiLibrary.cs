using System.Runtime.InteropServices;
using System.Text;

namespace Lora.Distributed;

/// <summary>
/// P/Invoke binding of Open MPI's C API (<c>libmpi.so.40</c>, Debian's <c>libopenmpi3</c> / <c>libopenmpi-dev</c>):
/// the dozen calls data-parallel training needs. TorchSharp has no <c>torch.distributed</c>. Open MPI's predefined
/// handles are addresses of global objects (<c>MPI_COMM_WORLD</c> is <c>&amp;ompi_mpi_comm_world</c>, <c>MPI_FLOAT</c>
/// is <c>&amp;ompi_mpi_float</c>, <c>MPI_SUM</c> is <c>&amp;ompi_mpi_op_sum</c>), read with
/// <see cref="NativeLibrary.GetExport"/>. MPICH-family libraries use integer handles and are not supported.
/// The library is found through <c>LORA_MPI</c> (a file or a directory) or the dynamic linker's search path.
/// </summary>
internal sealed unsafe class MpiLibrary
{
    /// <summary>Environment variable naming libmpi (a file, or a directory holding <c>libmpi.so.40</c>).</summary>
    public const string Variable = "LORA_MPI";

    public const int ThreadMultiple = 3; // MPI_THREAD_SINGLE 0, FUNNELED 1, SERIALIZED 2, MULTIPLE 3 (Open MPI's enum)

    private static readonly string[] Names = ["libmpi.so.40", "libmpi.so"];

    private readonly delegate* unmanaged<int*, nint, int, int*, int> _initThread;
    private readonly delegate* unmanaged<int*, int> _initialized;
    private readonly delegate* unmanaged<int*, int> _finalized;
    private readonly delegate* unmanaged<int> _finalize;
    private readonly delegate* unmanaged<nint, int*, int> _commRank;
    private readonly delegate* unmanaged<nint, int*, int> _commSize;
    private readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> _allreduce;
    private readonly delegate* unmanaged<void*, int, nint, int, nint, int> _bcast;
    private readonly delegate* unmanaged<nint, int> _barrier;
    private readonly delegate* unmanaged<nint, int, int> _abort;
    private readonly delegate* unmanaged<int, byte*, int*, int> _errorString;
    private readonly delegate* unmanaged<byte*, int*, int> _libraryVersion;

    private MpiLibrary(nint handle, string path)
    {
        Path = path;
        nint Export(string name) => NativeLibrary.TryGetExport(handle, name, out var address) ? address
            : throw new LoraException($"{path}: symbol {name} not found; Open MPI 4 or later is required (MPICH and Intel MPI are not supported).");
        _initThread = (delegate* unmanaged<int*, nint, int, int*, int>)Export("MPI_Init_thread");
        _initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        _finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _commRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        _allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export("MPI_Bcast");
        _barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        _abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        _errorString = (delegate* unmanaged<int, byte*, int*, int>)Export("MPI_Error_string");
        _libraryVersion = (delegate* unmanaged<byte*, int*, int>)Export("MPI_Get_library_version");
        CommWorld = Export("ompi_mpi_comm_world");
        Float = Export("ompi_mpi_float");
        Double = Export("ompi_mpi_double");
        Byte = Export("ompi_mpi_byte");
        Int64 = Export("ompi_mpi_long_long_int");
        Sum = Export("ompi_mpi_op_sum");
        Max = Export("ompi_mpi_op_max");
    }

    /// <summary>Where the library was loaded from (as given to the dynamic linker).</summary>
    public string Path { get; }

    public nint CommWorld { get; }

    public nint Float { get; }

    public nint Double { get; }

    public nint Byte { get; }

    public nint Int64 { get; }

    public nint Sum { get; }

    public nint Max { get; }

    /// <summary>The candidates tried, in order: <c>LORA_MPI</c> (a file or directory), then the linker's search.</summary>
    public static IReadOnlyList<string> Candidates()
    {
        var list = new List<string>();
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } configured)
        {
            if (Directory.Exists(configured))
                list.AddRange(Names.Select(n => System.IO.Path.Combine(configured, n)));
            else
                list.Add(configured);
        }

        list.AddRange(Names);
        return list;
    }

    /// <summary>Loads libmpi, or returns null with <paramref name="why"/> naming every candidate and its error.</summary>
    public static MpiLibrary? TryLoad(out string why)
    {
        var errors = new List<string>();
        foreach (var candidate in Candidates())
        {
            var handle = Posix.LoadGlobal(candidate, out var error);
            if (handle != 0)
            {
                why = string.Empty;
                return new MpiLibrary(handle, candidate);
            }

            errors.Add($"{candidate}: {error ?? "not found"}");
        }

        why = $"Open MPI's libmpi was not found (tried {string.Join("; ", errors)}). Install Open MPI (Debian/Ubuntu: " +
              $"apt-get install openmpi-bin libopenmpi-dev) or set {Variable} to its libmpi.so.40.";
        return null;
    }

    /// <summary>MPI_Init_thread(MPI_THREAD_MULTIPLE) unless initialized; returns the thread level provided.</summary>
    public int InitThread()
    {
        int flag;
        Check(_initialized(&flag), "MPI_Initialized");
        if (flag != 0)
            return ThreadMultiple;
        int provided;
        Check(_initThread(null, 0, ThreadMultiple, &provided), "MPI_Init_thread");
        return provided;
    }

    public bool Finalized
    {
        get
        {
            int flag;
            Check(_finalized(&flag), "MPI_Finalized");
            return flag != 0;
        }
    }

    public void FinalizeMpi() => Check(_finalize(), "MPI_Finalize");

    public int Rank()
    {
        int rank;
        Check(_commRank(CommWorld, &rank), "MPI_Comm_rank");
        return rank;
    }

    public int Size()
    {
        int size;
        Check(_commSize(CommWorld, &size), "MPI_Comm_size");
        return size;
    }

    /// <summary>In-place MPI_Allreduce (MPI_IN_PLACE is <c>(void*)1</c> in Open MPI) of <paramref name="count"/>
    /// elements at <paramref name="buffer"/>.</summary>
    public void AllReduce(void* buffer, int count, nint datatype, nint op) =>
        Check(_allreduce((void*)1, buffer, count, datatype, op, CommWorld), "MPI_Allreduce");

    public void Broadcast(void* buffer, int count, nint datatype, int root) =>
        Check(_bcast(buffer, count, datatype, root, CommWorld), "MPI_Bcast");

    public void Barrier() => Check(_barrier(CommWorld), "MPI_Barrier");

    /// <summary>MPI_Abort on MPI_COMM_WORLD: every process of the job is killed (mpirun reports the code).</summary>
    public void Abort(int code) => _ = _abort(CommWorld, code);

    /// <summary>MPI_Get_library_version's first line ("Open MPI v4.1.4, ...").</summary>
    public string LibraryVersion()
    {
        var buffer = stackalloc byte[8192]; // MPI_MAX_LIBRARY_VERSION_STRING is 256 in Open MPI
        // "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, ..." → "Open MPI v4.1.4"
        int length;
        Check(_libraryVersion(buffer, &length), "MPI_Get_library_version");
        return Encoding.UTF8.GetString(buffer, length).Split(',', 2)[0].Trim();
    }

    private void Check(int code, string call)
    {
        if (code == 0)
            return;
        var buffer = stackalloc byte[1024];
        int length = 0;
        var text = _errorString(code, buffer, &length) == 0 ? Encoding.UTF8.GetString(buffer, length) : $"error {code}";
        throw new LoraException($"{call} failed: {text}");
    }
}
