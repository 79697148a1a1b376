using Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Training;

/// <summary>The fused AdamW and the multi-tensor clipping against TorchSharp's per-parameter AdamW (PyTorch's
/// single-tensor algorithm) and the per-parameter clipping formula.</summary>
public class MultiTensorOptimizerTests
{
    private static List<Parameter> Parameters(int seed)
    {
        manual_seed(seed);
        return [new Parameter(randn(8, 16)), new Parameter(randn(16)), new Parameter(randn(4, 8)), new Parameter(randn(3))];
    }

    private static void SetGrads(IReadOnlyList<Parameter> parameters, int step)
    {
        var g = new Generator((ulong)(100 + step), CPU);
        foreach (var p in parameters)
            p.grad = randn(p.shape, generator: g) * (step + 1);
    }

    private static IEnumerable<TorchSharp.Modules.AdamW.ParamGroup> Groups(IReadOnlyList<Parameter> ps) =>
    [
        new TorchSharp.Modules.AdamW.ParamGroup(ps.Take(2), new TorchSharp.Modules.AdamW.Options { LearningRate = 1e-2, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.1, amsgrad = false, maximize = false }),
        new TorchSharp.Modules.AdamW.ParamGroup(ps.Skip(2), new TorchSharp.Modules.AdamW.Options { LearningRate = 1e-2, beta1 = 0.8, beta2 = 0.99, eps = 1e-6, weight_decay = 0, amsgrad = false, maximize = false }),
    ];

    [Fact]
    public void Fused_AdamW_matches_the_per_parameter_AdamW_and_launches_once_per_group()
    {
        var reference = Parameters(3);
        var fused = Parameters(3);
        using var a = optim.AdamW(Groups(reference), 1e-2);
        using var b = new Lora.Training.AdamW(Groups(fused), 1e-2);
        for (var step = 0; step < 6; step++)
        {
            var lr = 1e-2 * (1 + step); // changing rates, as a schedule sets them
            foreach (var g in a.ParamGroups)
                g.LearningRate = lr;
            foreach (var g in b.ParamGroups)
                g.LearningRate = lr;
            SetGrads(reference, step);
            SetGrads(fused, step);
            a.step();
            b.step();
            a.zero_grad();
            b.zero_grad();
        }

        for (var i = 0; i < reference.Count; i++)
        {
            var worst = (fused[i] - reference[i]).abs().max().item<float>();
            Assert.True(worst < 2e-6f, $"parameter {i}: max |fused − reference| = {worst}");
            Assert.False(fused[i].equal(Parameters(3)[i]).all().item<bool>(), "the parameters moved");
            Assert.Null(fused[i].grad); // zero_grad drops gradients
        }

        Assert.Equal(6 * 2, b.KernelCalls);
    }

    [Fact]
    public void Fused_AdamW_state_round_trips_through_TorchSharp_checkpoints()
    {
        var ps = Parameters(4);
        using var first = new Lora.Training.AdamW(Groups(ps), 1e-2);
        SetGrads(ps, 0);
        first.step();
        var path = Path.Combine(Fixtures.TempDirectory(), "optimizer.bin");
        first.save_state_dict(path);

        // Continue with TorchSharp's AdamW from the fused optimizer's state, and with the fused one: same result.
        var copy = ps.Select(p => new Parameter(p.detach().clone())).ToList();
        using var reference = optim.AdamW(Groups(copy), 1e-2);
        reference.load_state_dict(path);
        SetGrads(ps, 1);
        SetGrads(copy, 1);
        first.step();
        reference.step();
        for (var i = 0; i < ps.Count; i++)
            Assert.True((ps[i] - copy[i]).abs().max().item<float>() < 2e-6f, $"parameter {i}");
    }

    [Fact]
    public void A_found_inf_step_changes_nothing()
    {
        var ps = Parameters(5);
        using var optimizer = new Lora.Training.AdamW(Groups(ps), 1e-2);
        var before = ps.Select(p => p.detach().clone()).ToList();
        SetGrads(ps, 0);
        optimizer.Step(tensor(1.0f));
        for (var i = 0; i < ps.Count; i++)
            Assert.True(ps[i].equal(before[i]).all().item<bool>(), $"parameter {i}");
        optimizer.Step(tensor(0.0f));
        Assert.False(ps[0].equal(before[0]).all().item<bool>());
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.5)]
    [InlineData(1e6)]
    public void Clipping_matches_the_per_parameter_formula(double maxNorm)
    {
        var ps = Parameters(6);
        SetGrads(ps, 2);
        ps[1].grad = ps[1].grad!.to(ScalarType.BFloat16).to(ScalarType.Float32); // any values
        var grads = ps.Select(p => p.grad!.clone()).ToList();
        var expected = Math.Sqrt(grads.Sum(g => g.pow(2).sum().item<float>()));
        using var norm = GradientClipping.ClipGlobalNormAsync(ps, maxNorm);
        Assert.Equal(expected, norm.item<float>(), expected * 1e-5);
        var coefficient = maxNorm > 0 ? Math.Min(1, maxNorm / (expected + 1e-6)) : 1;
        for (var i = 0; i < ps.Count; i++)
            Assert.True((ps[i].grad! - grads[i] * coefficient).abs().max().item<float>() < 1e-5f, $"gradient {i}");
    }
}
