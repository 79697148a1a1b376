using TorchSharp;

namespace Lora.Runtime.Tests.Alignment;

/// <summary>
/// Runs a test class's tiny models on one libtorch thread (restored after): their ops are microseconds long, and on
/// a loaded 2-core machine intra-op threads spin-wait for each other, which makes them tens of times slower. Only for
/// classes in the non-parallel <see cref="Training.TrainerCollection"/>, since the setting is process-wide.
/// </summary>
public abstract class SingleThreaded : IDisposable
{
    private readonly int _threads = torch.get_num_threads();

    protected SingleThreaded() => torch.set_num_threads(1);

    public void Dispose()
    {
        torch.set_num_threads(_threads);
        GC.SuppressFinalize(this);
    }
}
