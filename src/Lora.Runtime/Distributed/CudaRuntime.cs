using System.Runtime.InteropServices;

namespace Lora.Distributed;

/// <summary><c>cudaSetDevice</c> of the CUDA runtime libtorch has already loaded: <c>ncclCommInitRank</c> binds the
/// communicator to the calling thread's current device, which TorchSharp cannot set.</summary>
internal static unsafe class CudaRuntime
{
    private static readonly string[] Names = ["libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0", "libcudart.so"];

    public static void SetDevice(int index)
    {
        if (index == 0)
            return; // the default current device
        foreach (var name in Names)
        {
            var handle = Posix.AlreadyLoaded(name);
            if (handle == 0 || !NativeLibrary.TryGetExport(handle, "cudaSetDevice", out var address))
                continue;
            var code = ((delegate* unmanaged<int, int>)address)(index);
            if (code != 0)
                throw new LoraException($"cudaSetDevice({index}) failed with CUDA error {code}.");
            return;
        }

        throw new LoraException($"cannot select cuda:{index} for NCCL: no CUDA runtime ({string.Join(", ", Names)}) is loaded in this process. " +
            "Give each rank one GPU with CUDA_VISIBLE_DEVICES and use cuda:0.");
    }
}
