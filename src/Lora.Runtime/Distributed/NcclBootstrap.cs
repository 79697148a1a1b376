namespace Lora.Distributed;

/// <summary>
/// NCCL's bootstrap over MPI, as Horovod and PyTorch do it: rank 0 makes the unique id (<c>ncclGetUniqueId</c>), MPI
/// broadcasts its 128 bytes, and every rank passes the same id to <c>ncclCommInitRank(comm, size, id, rank)</c>.
/// </summary>
internal static class NcclBootstrap
{
    /// <summary>Rank 0's <paramref name="rootId"/> on every rank (the others' argument is ignored).</summary>
    public static NcclUniqueId Share(DataParallel group, NcclUniqueId rootId)
    {
        ReadOnlySpan<byte> bytes = rootId;
        var shared = group.Broadcast(bytes, root: 0, what: "NCCL unique id broadcast");
        return ToUniqueId(shared);
    }

    public static NcclUniqueId ToUniqueId(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != NcclUniqueId.Bytes)
            throw new LoraException($"an NCCL unique id has {NcclUniqueId.Bytes} bytes, not {bytes.Length}.");
        NcclUniqueId id = default;
        bytes.CopyTo(id);
        return id;
    }
}
