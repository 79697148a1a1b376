using TorchSharp;

namespace Lora.Modules.Bases;

/// <summary>
/// While a scope is open, dense linear layers are built with their weight and bias on the meta device (shapes, no
/// memory), as accelerate's <c>init_empty_weights</c> does for every tensor. A quantized load builds the model in
/// such a scope and then gives each linear layer its real base — quantized from the checkpoint one weight at a time,
/// or dense — so a 4-bit model never holds a dense copy of all its weights at once. Per thread.
/// </summary>
public static class DeferredStorage
{
    [ThreadStatic]
    private static int _depth;

    /// <summary>True while a scope is open on this thread.</summary>
    public static bool Active => _depth > 0;

    /// <summary>Opens a scope; dispose it to close.</summary>
    public static IDisposable Begin()
    {
        _depth++;
        return new Scope();
    }

    /// <summary>The device dense storage is allocated on now: <paramref name="device"/>, or meta inside a scope.</summary>
    internal static torch.Device? DeviceFor(torch.Device? device) => Active ? torch.META : device;

    /// <summary>True when <paramref name="linearBase"/> has no storage yet (built inside a scope).</summary>
    public static bool IsDeferred(LinearBase linearBase) => linearBase.Device.type == DeviceType.META;

    private sealed class Scope : IDisposable
    {
        private bool _closed;

        public void Dispose()
        {
            if (_closed)
                return;
            _closed = true;
            _depth--;
        }
    }
}
