using TorchSharp;

namespace Lora.Backend;

/// <summary>Device helpers TorchSharp lacks (its <c>Device</c> has no value equality).</summary>
internal static class Devices
{
    /// <summary>True when <paramref name="a"/> and <paramref name="b"/> name the same device (CPU has no index).</summary>
    public static bool Same(torch.Device a, torch.Device b) =>
        a.type == b.type && (a.type != DeviceType.CUDA || Math.Max(a.index, 0) == Math.Max(b.index, 0));
}
