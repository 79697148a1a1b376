using Lora.Backend;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Training;

/// <summary>
/// Checkpointing through a chain of blocks: the input gradients handed to the autograd engine are released as the
/// backward pass goes (not all held to its end), and the recomputation redraws the first run's dropout masks with
/// both RNG strategies (the CPU state one and the CUDA reseed one, run here with the CPU generator standing in).
/// </summary>
[Collection(TrainerCollection.Name)]
public class CheckpointMemoryAndRngTests
{
    private const int Blocks = 6;
    private const double P = 0.3;

    /// <summary>Parameters of a chain of <see cref="Blocks"/> blocks <c>h → dropout(tanh(h·Wᵢ))</c>.</summary>
    private static List<Tensor> Weights()
    {
        var g = new Generator(3);
        return [.. Enumerable.Range(0, Blocks).Select(_ => (randn([8, 8], generator: g) * 0.5).requires_grad_(true))];
    }

    /// <summary>
    /// Forward and backward through the chain; returns the weights' gradients. <paramref name="observe"/> is called
    /// inside each block (with whether grad is on: true only in a recomputation) and gets the block's output.
    /// <paramref name="masks"/>: a fixed dropout mask per block instead of drawing one.
    /// </summary>
    private static List<Tensor> Run(List<Tensor> weights, bool checkpoint, Action<int, bool, Tensor>? observe = null, IReadOnlyList<Tensor>? masks = null, double p = P)
    {
        foreach (var w in weights)
            w.grad = null;
        using (var scope = NewDisposeScope())
        {
            var x = randn([4, 8], generator: new Generator(11));
            var h = x;
            for (var i = 0; i < weights.Count; i++)
            {
                var k = i;
                Tensor Block(Tensor input, Tensor?[] _)
                {
                    var y = tanh(input.matmul(weights[k]));
                    y = masks is null ? nn.functional.dropout(y, p, training: true) : y * masks[k] / (1 - p);
                    observe?.Invoke(k, is_grad_enabled(), y);
                    return y;
                }

                h = checkpoint ? GradientCheckpoint.Run(Block, h) : Block(h, []);
            }

            h.square().sum().backward();
        }

        return [.. weights.Select(w => w.grad!.clone())];
    }

    private static bool Same(Tensor a, Tensor b)
    {
        using var eq = a.eq(b).all(); // (Tensor.equal is elementwise in TorchSharp)
        return a.shape.SequenceEqual(b.shape) && eq.item<bool>();
    }

    private static void AssertClose(List<Tensor> expected, List<Tensor> actual)
    {
        for (var i = 0; i < expected.Count; i++)
        {
            var scale = expected[i].abs().max().item<float>();
            var diff = (actual[i] - expected[i]).abs().max().item<float>();
            Assert.True(scale > 0, $"block {i}: no gradient");
            Assert.True(diff <= 1e-5 * scale, $"block {i}: max|Δgrad| {diff:G3} (scale {scale:G3})");
        }
    }

    [Fact]
    public void Input_gradients_are_released_as_the_backward_pass_goes()
    {
        var weights = Weights();
        manual_seed(1);
        var plain = Run(weights, checkpoint: false, p: 0);

        GradientCheckpoint.ReleasePending();
        var held = new List<int>();
        manual_seed(1);
        var checkpointed = Run(weights, checkpoint: true, (_, recomputing, _) =>
        {
            if (recomputing)
                held.Add(PendingGradients.CountOnThisThread);
        }, p: 0);

        // Block k is recomputed after blocks k+1.. have returned their input gradients: holding them all to the end
        // of the backward pass would read 0, 1, ..., Blocks-1 here; released at each next return it reads 0, 1, 1, ...
        Assert.Equal(Blocks, held.Count);
        Assert.True(held.Max() <= 1, $"held input gradients during the backward pass: {string.Join(", ", held)}");
        Assert.True(PendingGradients.CountOnThisThread <= 1);
        GradientCheckpoint.ReleasePending();
        Assert.Equal(0, PendingGradients.CountOnThisThread);
        AssertClose(plain, checkpointed);
    }

    [Theory]
    [InlineData("cpu-state")]
    [InlineData("cpu-reseed")] // the CUDA strategy (seed drawn on the host, reseed before each run), on the CPU generator
    public void Recomputation_redraws_the_forward_masks(string strategy)
    {
        var weights = Weights();
        RecomputationRng.Override = strategy == "cpu-reseed" ? RecomputationRng.CpuReseed : RecomputationRng.CpuState;
        try
        {
            manual_seed(7);
            using var start = get_rng_state();
            var forwardMasks = new Tensor?[Blocks];
            var recomputedMasks = new Tensor?[Blocks];
            var checkpointed = Run(weights, checkpoint: true, (k, recomputing, y) =>
            {
                var mask = y.detach().ne(0).DetachFromDisposeScope();
                if (recomputing)
                    recomputedMasks[k] = mask;
                else
                    forwardMasks[k] = mask;
            });
            GradientCheckpoint.ReleasePending();
            using var after = rand(4);

            for (var k = 0; k < Blocks; k++)
            {
                Assert.True(Same(forwardMasks[k]!, recomputedMasks[k]!), $"block {k}: the recomputation drew another mask");
                Assert.InRange(forwardMasks[k]!.to(ScalarType.Float32).mean().item<float>(), 0.4f, 0.95f); // dropout did drop
            }

            Assert.False(Same(forwardMasks[0]!, forwardMasks[1]!)); // each block its own mask

            // The gradients of the function the forward computed: the same chain, not checkpointed, with its masks.
            var reference = Run(weights, checkpoint: false, masks: forwardMasks!);
            AssertClose(reference, checkpointed);

            // The outer CPU stream after the backward pass: as after the plain forward's draws (CPU state: the
            // recomputations put it back), or after one seed draw per block (reseed: the seeded runs are isolated).
            set_rng_state(start);
            if (strategy == "cpu-reseed")
            {
                for (var k = 0; k < Blocks; k++)
                    DeviceRng.DrawSeed();
            }
            else
            {
                Run(weights, checkpoint: false);
            }

            using var expected = rand(4);
            Assert.True(Same(expected, after), "the checkpointed backward pass moved the outer CPU stream");
            foreach (var m in forwardMasks.Concat(recomputedMasks))
                m?.Dispose();
        }
        finally
        {
            RecomputationRng.Override = null;
        }
    }

    [Fact]
    public void The_cpu_strategy_gives_the_masks_of_the_plain_run()
    {
        // On the CPU the checkpointed run also draws the very masks of a run without checkpointing.
        var weights = Weights();
        manual_seed(9);
        var plain = Run(weights, checkpoint: false);
        manual_seed(9);
        var checkpointed = Run(weights, checkpoint: true);
        GradientCheckpoint.ReleasePending();
        AssertClose(plain, checkpointed);
    }

    [Fact]
    public void Per_step_device_seed_is_a_function_of_the_cpu_state()
    {
        var seeded = new List<long>();
        var cuda = new Device(DeviceType.CUDA);
        manual_seed(21);
        using (var before = get_rng_state())
        {
            Assert.Null(DeviceRng.SeedForStep(CPU, seeded.Add)); // off CUDA: nothing seeded, the CPU stream untouched
            using var now = get_rng_state();
            Assert.True(Same(before, now));
        }

        Assert.Empty(seeded);

        // Steps 1..3, a checkpoint (the CPU state, as TrainingCheckpoints saves it), steps 4..6; then a resume from
        // the saved bytes draws the seeds of steps 4..6 again.
        for (var i = 0; i < 3; i++)
            DeviceRng.SeedForStep(cuda, seeded.Add);
        byte[] saved;
        using (var rng = get_rng_state())
            saved = rng.bytes.ToArray();
        for (var i = 0; i < 3; i++)
            DeviceRng.SeedForStep(cuda, seeded.Add);

        using (var restored = tensor(saved, ScalarType.Byte))
            set_rng_state(restored);
        var resumed = Enumerable.Range(0, 3).Select(_ => DeviceRng.SeedForStep(cuda, seeded.Add)!.Value).ToList();

        Assert.Equal(9, seeded.Count);
        Assert.Equal(seeded.Skip(3).Take(3), resumed);
        Assert.Equal(6, seeded.Take(6).Distinct().Count());
        Assert.All(seeded, s => Assert.True(s >= 0));
    }
}
