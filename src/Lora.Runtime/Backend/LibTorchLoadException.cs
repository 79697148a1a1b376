namespace Lora.Backend;

/// <summary>libtorch could not be loaded or the requested device is not usable: one message that says what was
/// tried and how to fix it, instead of TorchSharp's load trace.</summary>
public sealed class LibTorchLoadException : LoraException
{
    public LibTorchLoadException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
