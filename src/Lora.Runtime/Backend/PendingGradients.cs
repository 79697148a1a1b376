using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace Lora.Backend;

/// <summary>
/// Gradients that custom autograd functions (<see cref="Training.GradientCheckpoint"/>, the quantized matmuls) hand
/// back to the autograd engine: the engine copies them after the callback returns, so their managed handles are
/// released after the backward pass (<see cref="Training.GradientCheckpoint.ReleasePending"/>), not inside it.
/// </summary>
internal static class PendingGradients
{
    private static readonly ConcurrentQueue<Tensor> Pending = new();

    /// <summary>Keeps <paramref name="gradient"/> alive until <see cref="Release"/>; returns it.</summary>
    public static Tensor Hold(Tensor gradient)
    {
        Pending.Enqueue(gradient);
        return gradient;
    }

    public static void Release()
    {
        while (Pending.TryDequeue(out var t))
            t.Dispose();
    }
}
