using static TorchSharp.torch;

namespace Lora.Backend;

/// <summary>
/// Gradients that custom autograd functions (<see cref="Training.GradientCheckpoint"/>, the quantized matmuls, the
/// fused cross-entropy) hand back to the autograd engine. TorchSharp's <c>Node.ApplyFunc</c> returns the managed
/// tensors' native handles, and the native <c>CSharpNode::apply</c> copies each into its <c>variable_list</c>
/// (<c>output.emplace_back(*res.array[i])</c>, a reference-counted <c>at::Tensor</c> copy) right after the managed
/// callback returns, on the same thread (TorchSharp <c>src/Native/LibTorchSharp/THSAutograd.cpp</c>,
/// <c>src/TorchSharp/AutogradFunction.cs</c>). So a managed handle must outlive its callback, but not much longer: the
/// engine owns its own reference once the callback has returned.
/// <para>
/// Each callback gives its gradients in one <see cref="Return"/> call, as its last act. The next <see cref="Return"/>
/// on the same thread comes from a later callback (or from one nested in a later callback's reentrant backward, which
/// starts after the earlier callback returned), so it releases that thread's previous handles: at most one callback's
/// gradients per engine thread stay alive, instead of every checkpointed layer's input gradient until the end of the
/// backward pass. <see cref="Release"/> (<see cref="Training.GradientCheckpoint.ReleasePending"/>, after each
/// backward) releases the rest.
/// </para>
/// </summary>
internal static class PendingGradients
{
    private static readonly object Gate = new();

    /// <summary>The last callback's gradients, per managed thread id.</summary>
    private static readonly Dictionary<int, Tensor[]> LastByThread = new();

    /// <summary>Handles held now, all threads (for tests and diagnostics).</summary>
    internal static int Count
    {
        get
        {
            lock (Gate)
                return LastByThread.Values.Sum(a => a.Length);
        }
    }

    /// <summary>Handles held now for callbacks that ran on this thread (for tests: other tests' backward passes
    /// may run on other threads at the same time).</summary>
    internal static int CountOnThisThread
    {
        get
        {
            lock (Gate)
                return LastByThread.TryGetValue(Environment.CurrentManagedThreadId, out var a) ? a.Length : 0;
        }
    }

    /// <summary>
    /// The gradients a backward callback returns (a null for an input without one), held until this thread's next
    /// <see cref="Return"/> or <see cref="Release"/>; releases this thread's previously held ones. Call once per
    /// callback, as its last act (not before running anything that could call back into the engine on this thread).
    /// </summary>
    public static List<Tensor> Return(params Tensor?[] gradients)
    {
        var held = gradients.Where(g => g is not null).Select(g => g!).ToArray();
        var thread = Environment.CurrentManagedThreadId;
        Tensor[]? previous;
        lock (Gate)
        {
            LastByThread.Remove(thread, out previous);
            if (held.Length > 0)
                LastByThread[thread] = held;
        }

        if (previous is not null)
        {
            foreach (var t in previous)
                t.Dispose();
        }

        return [.. gradients.Select(g => g!)];
    }

    public static void Release()
    {
        Tensor[][] all;
        lock (Gate)
        {
            all = [.. LastByThread.Values];
            LastByThread.Clear();
        }

        foreach (var batch in all)
        {
            foreach (var t in batch)
                t.Dispose();
        }
    }
}
