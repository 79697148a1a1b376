using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Lora.Backend;

namespace Lora.Distributed;

/// <summary>NCCL's <c>ncclUniqueId</c>: 128 opaque bytes (<c>NCCL_UNIQUE_ID_BYTES</c>), made by rank 0 and broadcast
/// to the others over MPI before <c>ncclCommInitRank</c> (Horovod's and PyTorch's bootstrap).</summary>
[InlineArray(Bytes)]
internal struct NcclUniqueId
{
    public const int Bytes = 128;

    private byte _element;
}

/// <summary>
/// P/Invoke binding of NCCL (<c>libnccl.so.2</c>): unique id, communicator init/abort/destroy, all-reduce, error
/// strings. It is the NCCL of the PyTorch install the CUDA path already uses, found the way <c>LORA_LIBTORCH</c>
/// finds libtorch: <c>LORA_NCCL</c> (a file or directory), then <c>LORA_LIBTORCH</c>'s directory, then PyTorch's
/// wheel layout next to it (<c>site-packages/nvidia/nccl/lib</c>), then the linker's search path.
/// </summary>
internal sealed unsafe class NcclLibrary
{
    public const string Variable = "LORA_NCCL";
    public const string FileName = "libnccl.so.2";

    // ncclDataType_t and ncclRedOp_t (nccl.h).
    public const int Float32 = 7;
    public const int Float64 = 8;
    public const int BFloat16 = 9;
    public const int OpSum = 0;

    private readonly delegate* unmanaged<int*, int> _getVersion;
    private readonly delegate* unmanaged<NcclUniqueId*, int> _getUniqueId;
    private readonly delegate* unmanaged<nint*, int, NcclUniqueId, int, int> _commInitRank;
    private readonly delegate* unmanaged<nint, int> _commDestroy;
    private readonly delegate* unmanaged<nint, int> _commAbort;
    private readonly delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int> _allReduce;
    private readonly delegate* unmanaged<int, nint> _errorString;

    private NcclLibrary(nint handle, string path)
    {
        Path = path;
        nint Export(string name) => NativeLibrary.TryGetExport(handle, name, out var address) ? address
            : throw new LoraException($"{path}: symbol {name} not found; is it NCCL 2?");
        _getVersion = (delegate* unmanaged<int*, int>)Export("ncclGetVersion");
        _getUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Export("ncclGetUniqueId");
        _commInitRank = (delegate* unmanaged<nint*, int, NcclUniqueId, int, int>)Export("ncclCommInitRank");
        _commDestroy = (delegate* unmanaged<nint, int>)Export("ncclCommDestroy");
        _commAbort = (delegate* unmanaged<nint, int>)Export("ncclCommAbort");
        _allReduce = (delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int>)Export("ncclAllReduce");
        _errorString = (delegate* unmanaged<int, nint>)Export("ncclGetErrorString");
    }

    public string Path { get; }

    /// <summary>Where NCCL is looked for, in order (see the class summary), from the environment.</summary>
    public static IReadOnlyList<string> Candidates() =>
        Candidates(Environment.GetEnvironmentVariable(Variable), Environment.GetEnvironmentVariable(TorchRuntime.LibTorchVariable));

    /// <summary>Where NCCL is looked for given <c>LORA_NCCL</c> and <c>LORA_LIBTORCH</c>.</summary>
    public static IReadOnlyList<string> Candidates(string? configured, string? libtorch)
    {
        var list = new List<string>();
        if (configured is { Length: > 0 })
            list.Add(Directory.Exists(configured) ? System.IO.Path.Combine(configured, FileName) : configured);
        if (libtorch is { Length: > 0 })
        {
            list.Add(System.IO.Path.Combine(libtorch, FileName));
            // pip's torch/lib sits in site-packages; nvidia-nccl-cu12 installs site-packages/nvidia/nccl/lib.
            list.Add(System.IO.Path.GetFullPath(System.IO.Path.Combine(libtorch, "..", "..", "nvidia", "nccl", "lib", FileName)));
        }

        list.Add(FileName);
        return list;
    }

    /// <summary>Loads NCCL, or returns null with <paramref name="why"/> listing what was tried.</summary>
    public static NcclLibrary? TryLoad(out string why) => TryLoad(Candidates(), out why);

    /// <summary>Loads the first of <paramref name="candidates"/> that is NCCL 2.</summary>
    public static NcclLibrary? TryLoad(IEnumerable<string> candidates, out string why)
    {
        var errors = new List<string>();
        foreach (var candidate in candidates)
        {
            if (candidate.Contains('/') && !File.Exists(candidate))
            {
                errors.Add($"{candidate}: no such file");
                continue;
            }

            var handle = Posix.LoadGlobal(candidate, out var error);
            if (handle != 0)
            {
                try
                {
                    why = string.Empty;
                    return new NcclLibrary(handle, candidate);
                }
                catch (LoraException e)
                {
                    errors.Add(e.Message);
                    continue;
                }
            }

            errors.Add($"{candidate}: {error ?? "not found"}");
        }

        why = $"NCCL ({FileName}) was not found (tried {string.Join("; ", errors)}). It comes with a CUDA PyTorch install " +
              $"(pip's nvidia-nccl-cu12); set {Variable} to the file or its directory, or {TorchRuntime.LibTorchVariable} to that PyTorch's torch/lib.";
        return null;
    }

    /// <summary>ncclGetVersion as "2.21.5".</summary>
    public string Version()
    {
        int code;
        Check(_getVersion(&code), "ncclGetVersion");
        // NCCL_VERSION(X,Y,Z) = X*10000 + Y*100 + Z since 2.9 (X*1000 + Y*100 + Z before).
        return code >= 10000 ? $"{code / 10000}.{code / 100 % 100}.{code % 100}" : $"{code / 1000}.{code / 100 % 10}.{code % 100}";
    }

    public NcclUniqueId GetUniqueId()
    {
        NcclUniqueId id = default;
        Check(_getUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    public nint CommInitRank(int worldSize, NcclUniqueId id, int rank)
    {
        nint comm;
        Check(_commInitRank(&comm, worldSize, id, rank), "ncclCommInitRank");
        return comm;
    }

    /// <summary>In-place ncclAllReduce (sum) of <paramref name="count"/> elements at the device address
    /// <paramref name="buffer"/>, on the legacy default stream (the stream libtorch's kernels run on here).</summary>
    public void AllReduceSum(nint buffer, long count, int datatype, nint comm) =>
        Check(_allReduce((void*)buffer, (void*)buffer, (nuint)count, datatype, OpSum, comm, 0), "ncclAllReduce");

    public void Destroy(nint comm) => _ = _commDestroy(comm);

    public void Abort(nint comm) => _ = _commAbort(comm);

    private void Check(int code, string call)
    {
        if (code != 0)
            throw new LoraException($"{call} failed: {Marshal.PtrToStringUTF8(_errorString(code))} (ncclResult {code}).");
    }
}
