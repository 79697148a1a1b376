using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Backend;

/// <summary>
/// Host → device copies of batches that do not stall the host: on CUDA the tensor goes through page-locked memory
/// (<c>pin_memory</c>) and is copied with <c>non_blocking</c>, as PyTorch's <c>DataLoader(pin_memory=True)</c> +
/// <c>.to(device, non_blocking=True)</c> do. A copy from pageable memory makes the host wait for the device to reach
/// it; from pinned memory the host goes on queueing kernels. Freeing the pinned staging tensor right away is safe:
/// PyTorch's caching host allocator records the copy's stream event and does not hand the block out again before the
/// copy has finished (aten/src/ATen/cuda/CachingHostAllocator.cpp, <c>record_event</c> from <c>copy_</c>). Elsewhere
/// (CPU, or a tensor already on the device) a plain <c>to</c>.
/// </summary>
internal static class HostToDevice
{
    public static Tensor Copy(Tensor tensor, Device device)
    {
        if (device.type != DeviceType.CUDA || tensor.device_type != DeviceType.CPU)
            return tensor.to(device);
        using var pinned = tensor.is_pinned() ? tensor.alias() : tensor.pin_memory();
        return pinned.to(device, non_blocking: true);
    }

    /// <summary><see cref="Copy"/> as an extension (batch tensors of the objectives' loss paths).</summary>
    public static Tensor CopyTo(this Tensor tensor, Device device) => Copy(tensor, device);
}
