using System.Security.Cryptography;
using TorchSharp;

namespace Lora.Distributed;

public sealed partial class DataParallel
{
    /// <summary><c>lora info</c>'s check of the collectives (call it on every rank): a tensor all-reduce (each rank
    /// adds rank + 1, so every element must be W(W+1)/2) and the NCCL bootstrap's broadcast of rank 0's 128-byte
    /// unique id (random bytes here, so no GPU is needed) arriving intact everywhere. Returns "ok" or what failed.</summary>
    public string CheckCollectives()
    {
        using var scope = torch.NewDisposeScope();
        var values = torch.full(1000, Rank + 1, torch.ScalarType.Float32);
        AllReduceSum(values, "info all-reduce check");
        var expected = WorldSize * (WorldSize + 1) / 2f;
        var allReduced = values.eq(expected).all().item<bool>();

        var id = default(NcclUniqueId);
        if (IsRoot)
            RandomNumberGenerator.Fill(id);
        var shared = NcclBootstrap.Share(this, id);
        // Rank 0's digest of the id it sent, summed with zeros from the others, must equal each rank's digest of what it got.
        var digest = BitConverter.ToInt64(SHA256.HashData(shared), 0) & 0xFFFFFFFF;
        Span<long> rootDigest = [IsRoot ? digest : 0];
        AllReduceSum(rootDigest, "info broadcast check");
        Span<long> same = [digest == rootDigest[0] ? 1 : 0];
        AllReduceSum(same, "info broadcast check");
        var broadcastOk = same[0] == WorldSize;
        return allReduced && broadcastOk ? "ok" : $"wrong (all-reduce {(allReduced ? "ok" : "wrong")}, unique-id broadcast {(broadcastOk ? "ok" : "wrong")})";
    }
}
