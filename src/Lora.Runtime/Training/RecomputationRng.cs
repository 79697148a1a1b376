using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// How a checkpointed block's recomputation draws the random numbers (dropout masks) of its first run: PyTorch's
/// <c>preserve_rng_state</c> (<c>torch/utils/checkpoint.py</c>, <c>CheckpointFunction.forward</c> saves
/// <c>torch.get_rng_state()</c> and the input devices' states, <c>backward</c> restores them inside
/// <c>torch.random.fork_rng</c>, so the outer streams are left as they were).
/// <list type="bullet">
/// <item><see cref="CpuState"/>: the CPU generator's state is captured before the first run and set again for the
/// recomputation (PyTorch's CPU path).</item>
/// <item><see cref="CudaReseed"/>: TorchSharp 0.107 has no get/set state for the default CUDA generator (only
/// <c>torch.cuda.manual_seed</c>), so the block's CUDA stream is made a function of a seed instead: a seed is drawn
/// from the CPU generator on the host (no device sync), the CUDA generator is seeded with it before the first run and
/// seeded with it again before the recomputation. The CPU state is preserved as on the CPU path. The CUDA generator
/// cannot be put back after the recomputation; it is left where the recomputation's draws leave it (deterministic:
/// the recomputation draws what the first run drew), and <see cref="DeviceRng.SeedForStep"/> reseeds it at every
/// optimizer step anyway.</item>
/// <item><see cref="CpuReseed"/> (tests): the reseed strategy with the CPU generator standing in for the device's,
/// so it runs on a machine without a GPU: <c>torch.manual_seed</c> (CPU only in TorchSharp) instead of
/// <c>torch.cuda.manual_seed</c>, and the outer CPU state restored after each seeded run (the real device generator
/// is separate from the CPU one, so seeding it leaves the CPU stream alone).</item>
/// </list>
/// The CUDA seeding call is <c>torch.cuda.manual_seed_all</c> rather than <c>manual_seed</c> (current device only),
/// so a block on a device other than the current one is seeded too; it only sets seeds (no kernel, no sync).
/// Not executed here on CUDA (no GPU on the development machine): the CUDA path is the CPU-tested reseed path with
/// that seeding call.
/// </summary>
internal sealed class RecomputationRng
{
    private readonly Action<long>? _seed;
    private readonly bool _seedsCpu;

    private RecomputationRng(string name, Action<long>? seed, bool seedsCpu)
    {
        Name = name;
        _seed = seed;
        _seedsCpu = seedsCpu;
    }

    public static RecomputationRng CpuState { get; } = new("cpu-state", null, false);

    public static RecomputationRng CudaReseed { get; } = new("cuda-reseed", torch.cuda.manual_seed_all, false);

    public static RecomputationRng CpuReseed { get; } = new("cpu-reseed", s => torch.manual_seed(s).Dispose(), true);

    /// <summary>Tests: the strategy the blocks checkpointed on this thread use while set (null: by the input's
    /// device). Per thread, so it cannot leak into tests running beside.</summary>
    internal static RecomputationRng? Override
    {
        get => _override;
        set => _override = value;
    }

    [ThreadStatic]
    private static RecomputationRng? _override;

    public string Name { get; }

    public static RecomputationRng For(Device device) =>
        Override ?? (device.type == DeviceType.CUDA ? CudaReseed : CpuState);

    /// <summary>At the block's forward, before its first run.</summary>
    public Snapshot Capture()
    {
        long? seed = _seed is null ? null : DeviceRng.DrawSeed(); // advances the CPU stream by one draw
        return new Snapshot(this, seed, get_rng_state().DetachFromDisposeScope());
    }

    /// <summary>What one checkpointed block needs to redraw its first run's random numbers.</summary>
    internal sealed class Snapshot(RecomputationRng rng, long? seed, Tensor cpuState) : IDisposable
    {
        public long? Seed => seed;

        /// <summary>The block's first run.</summary>
        public Tensor RunForward(Func<Tensor> run)
        {
            if (seed is not { } s)
                return run();
            if (!rng._seedsCpu)
            {
                rng._seed!(s); // CUDA: nothing to restore afterwards (and the CPU stream is not touched)
                return run();
            }

            var outer = get_rng_state();
            try
            {
                rng._seed!(s);
                return run();
            }
            finally
            {
                set_rng_state(outer);
                outer.Dispose();
            }
        }

        /// <summary>The recomputation in the backward pass: the first run's CPU state (and device seed), then the
        /// outer CPU state back (PyTorch: <c>fork_rng</c> around <c>set_rng_state(ctx.fwd_cpu_state)</c>).</summary>
        public Tensor Recompute(Func<Tensor> run)
        {
            var outer = get_rng_state();
            try
            {
                set_rng_state(cpuState);
                if (seed is { } s)
                    rng._seed!(s);
                return run();
            }
            finally
            {
                set_rng_state(outer);
                outer.Dispose();
            }
        }

        public void Dispose() => cpuState.Dispose();
    }
}

/// <summary>
/// The device generator as a function of the CPU generator's state, which is what a checkpoint saves (TorchSharp
/// 0.107 cannot read or set the CUDA generator's state).
/// </summary>
internal static class DeviceRng
{
    /// <summary>A seed drawn from the CPU generator on the host (one 64-bit draw; no device work, no sync).</summary>
    public static long DrawSeed()
    {
        using var t = randint(long.MaxValue, [1], dtype: ScalarType.Int64, device: CPU);
        return t.item<long>();
    }

    /// <summary>
    /// At the start of an optimizer step on CUDA: seeds the CUDA generator from a seed drawn from the CPU generator,
    /// so the step's CUDA random numbers (dropout masks) follow from the CPU state, which a checkpoint saves and a
    /// resume restores: the resumed run draws the masks the uninterrupted run drew. Does nothing off CUDA (the CPU
    /// stream is left as it was). <paramref name="seedDevice"/>: tests (default <c>torch.cuda.manual_seed_all</c>).
    /// Returns the seed, or null when nothing was seeded.
    /// </summary>
    public static long? SeedForStep(Device device, Action<long>? seedDevice = null)
    {
        if (device.type != DeviceType.CUDA)
            return null;
        var seed = DrawSeed();
        (seedDevice ?? torch.cuda.manual_seed_all)(seed);
        return seed;
    }
}
