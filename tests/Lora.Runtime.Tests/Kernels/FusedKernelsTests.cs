using Lora.Kernels;
using Lora.Models;
using Lora.Modules;
using Lora.Peft;
using Lora.Runtime.Tests.Training;
using Lora.Training;
using Lora.Tuners.LoRA;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Kernels;

/// <summary>
/// The autograd functions of <c>Kernels/</c> against the composite ops they replace: the same forward values (bit for
/// bit where the function runs the composite's ops), and the gradients autograd derives from the composite, to
/// rounding. Each side is chosen for this thread only (<see cref="FusedKernels.Composite"/>,
/// <see cref="FusedKernels.LeanOnCpu"/>: the functions run on the CPU only when asked).
/// </summary>
public class FusedKernelsTests
{
    private static Generator Seed(ulong seed) => new(seed);

    private static void Close(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.dtype, actual.dtype);
        var scale = Math.Max(1e-12, expected.abs().max().to(ScalarType.Float64).item<double>());
        var error = (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64)).abs().max().item<double>();
        Assert.True(error <= tolerance * scale, $"{what}: max |Δ| {error:g3} > {tolerance:g2} × max |expected| {scale:g3}");
    }

    /// <summary>Output and input gradients of <paramref name="f"/> on fresh leaf copies of <paramref name="inputs"/>,
    /// for a fixed random upstream gradient.</summary>
    private static (Tensor Output, Tensor?[] Grads) Run(Func<Tensor[], Tensor> f, Tensor[] inputs, bool[] needGrad, bool composite)
    {
        var leaves = inputs.Select((t, i) => t.detach().clone().requires_grad_(needGrad[i])).ToArray();
        Tensor y;
        using (composite ? FusedKernels.Composite() : FusedKernels.LeanOnCpu()) // the functions run on CUDA by default
        {
            y = f(leaves);
            var upstream = randn(y.shape, generator: Seed(11)).to(y.dtype);
            y.backward([upstream]);
        }

        GradientCheckpoint.ReleasePending();
        return (y.detach(), leaves.Select(l => l.grad?.clone()).ToArray());
    }

    private static void SameAsComposite(Func<Tensor[], Tensor> f, Tensor[] inputs, bool[] needGrad, double gradTolerance, bool bitwiseForward = true, double forwardTolerance = 1e-6)
    {
        var fused = Run(f, inputs, needGrad, composite: false);
        var plain = Run(f, inputs, needGrad, composite: true);
        if (bitwiseForward)
            Assert.True(plain.Output.eq(fused.Output).all().item<bool>(), "forward values differ from the composite's");
        else
            Close(plain.Output, fused.Output, forwardTolerance, "forward");
        for (var i = 0; i < inputs.Length; i++)
        {
            if (!needGrad[i])
                continue;
            Assert.NotNull(fused.Grads[i]);
            Close(plain.Grads[i]!, fused.Grads[i]!, gradTolerance, $"gradient of input {i}");
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32, false, 1e-5)]
    [InlineData(ScalarType.Float32, true, 1e-5)]
    [InlineData(ScalarType.BFloat16, false, 2e-2)] // bf16 gradients: one rounding apart (2⁻⁸) where the op order differs
    [InlineData(ScalarType.BFloat16, true, 2e-2)]
    public void RmsNorm_function_matches_the_composite(ScalarType dtype, bool trainableWeight, double tolerance)
    {
        using var norm = new RmsNorm(48, 1e-6, dtype);
        using (no_grad())
            norm.Weight.copy_(rand([48], generator: Seed(3)) + 0.5);
        var x = (randn([2, 5, 48], generator: Seed(2)) * 3).to(dtype);
        SameAsComposite(t =>
        {
            norm.Weight.requires_grad = trainableWeight;
            norm.Weight.grad = null;
            return norm.call(t[0]);
        }, [x], [true], tolerance);

        if (trainableWeight)
        {
            Tensor WeightGrad(bool composite)
            {
                norm.Weight.grad = null;
                using (composite ? FusedKernels.Composite() : FusedKernels.LeanOnCpu())
                    norm.call(x.detach().requires_grad_(true)).backward([randn([2, 5, 48], generator: Seed(11)).to(dtype)]);
                GradientCheckpoint.ReleasePending();
                return norm.Weight.grad!.clone();
            }

            Close(WeightGrad(composite: true), WeightGrad(composite: false), tolerance, "weight gradient");
        }
    }

    [Fact]
    public void RmsNorm_with_a_frozen_input_still_trains_its_weight()
    {
        using var lean = FusedKernels.LeanOnCpu();
        using var norm = new RmsNorm(8, 1e-6);
        var x = randn([3, 8], generator: Seed(4));
        norm.call(x).sum().backward();
        GradientCheckpoint.ReleasePending();
        Assert.NotNull(norm.Weight.grad);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 1e-6)]
    [InlineData(ScalarType.BFloat16, 1e-2)]
    public void SwiGlu_function_matches_the_composite(ScalarType dtype, double tolerance)
    {
        var gate = (randn([2, 5, 40], generator: Seed(5)) * 3).to(dtype);
        var up = randn([2, 5, 40], generator: Seed(6)).to(dtype);
        SameAsComposite(t => FusedKernels.Enabled ? SwiGluFunction.Apply(t[0], t[1]) : nn.functional.silu(t[0]) * t[1],
            [gate, up], [true, true], tolerance);
        SameAsComposite(t => FusedKernels.Enabled ? SwiGluFunction.Apply(t[0], t[1]) : nn.functional.silu(t[0]) * t[1],
            [gate, up], [false, true], tolerance); // only up adapted
    }

    [Fact]
    public void Rotary_function_matches_the_composite()
    {
        var rope = new RotaryEmbedding(new RopeConfig(), 16);
        var positions = arange(7).unsqueeze(0).expand(2, 7).add(3);
        var (cos, sin) = rope.Compute(positions, ScalarType.Float32);
        var q = randn([2, 4, 7, 16], generator: Seed(7));
        SameAsComposite(t => RotaryEmbedding.Apply(t[0], cos, sin), [q], [true], 1e-6);
    }

    [Theory]
    [InlineData(false, 7)] // causal, no mask
    [InlineData(true, 7)]  // a padding mask
    [InlineData(true, 10)] // keys longer than queries (a KV cache or prefix)
    public void Grouped_query_attention_matches_repeated_heads(bool withMask, int keys)
    {
        var q = randn([2, 6, 7, 8], generator: Seed(8));
        var k = randn([2, 2, keys, 8], generator: Seed(9));
        var v = randn([2, 2, keys, 8], generator: Seed(10));
        Tensor? mask = null;
        if (withMask)
        {
            mask = ones([2, 1, 7, keys], ScalarType.Bool).tril(keys - 7);
            mask[0, .., .., 0] = tensor(false); // row 0 is left-padded by one position
            mask[0, .., 0, 0] = tensor(true);   // (a fully masked row is undefined in SDPA; keep one key)
        }

        SameAsComposite(t => Attention.GroupedQuery(t[0], t[1], t[2], mask), [q, k, v], [true, true, true], 1e-5, bitwiseForward: false);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 1e-5)]
    [InlineData(ScalarType.BFloat16, 2e-2)]
    public void Lora_folded_update_matches_the_plain_sum(ScalarType baseDType, double tolerance)
    {
        using var layer = new LinearLayer(24, 20, hasBias: true, dtype: baseDType);
        using (no_grad())
        {
            layer.Weight.copy_(randn([20, 24], generator: Seed(12)).to(baseDType) * 0.2);
            layer.Bias!.copy_(randn([20], generator: Seed(16)).to(baseDType));
        }
        layer.Weight.requires_grad = false;
        var adapter = new LoraAdapter(24, 20, rank: 4, alpha: 12, init: LoraInit.Random);
        layer.AddAdapter("default", adapter);
        var x = randn([3, 5, 24], generator: Seed(13)).to(baseDType);
        // bf16: the composite rounds Δy to bf16 before the sum, PEFT's order (the fused path) after it: one bf16 step apart.
        SameAsComposite(t => layer.call(t[0]), [x], [true], tolerance, bitwiseForward: false, forwardTolerance: baseDType == ScalarType.Float32 ? 1e-6 : 1e-2);

        // PEFT's order (lora.Linear.forward): the sum in the adapter's dtype, then back to the base's.
        using (no_grad())
        {
            var peft = (layer.BaseForward(x).to(ScalarType.Float32) + adapter.Delta(x)).to(baseDType);
            Close(peft, layer.call(x), baseDType == ScalarType.Float32 ? 1e-6 : 1e-2, "PEFT's sum");
        }

        Tensor AdapterGrad(bool composite)
        {
            adapter.LoraB.weight!.grad = null;
            using (composite ? FusedKernels.Composite() : null)
                layer.call(x.detach().requires_grad_(true)).to(ScalarType.Float32).square().sum().backward();
            return adapter.LoraB.weight!.grad!.clone();
        }

        Close(AdapterGrad(composite: true), AdapterGrad(composite: false), tolerance, "lora_B gradient");
    }

    [Fact]
    public void A_bf16_block_casts_its_input_once_for_all_adapted_projections()
    {
        using var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"), ScalarType.BFloat16);
        var all = new[] { "q_proj", "k_proj", "v_proj", "gate_proj", "up_proj" };
        PeftInjector.Inject(model, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(all), InitLoraWeights = "false" });
        Assert.All(model.AdapterParameters(), p => Assert.Equal(ScalarType.Float32, p.Parameter.dtype));
        using var ids = randint(3, 300, [2, 6], generator: Seed(14));
        var before = SharedAdapterInput.CastsMade;
        using (var scope = NewDisposeScope())
            model.Forward(ids).sum().backward();
        GradientCheckpoint.ReleasePending();
        Assert.Equal(2 * 2, SharedAdapterInput.CastsMade - before); // 2 layers × (one for q,k,v + one for gate,up), not 2 × 5
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // with the autograd functions (RMSNorm, RoPE, SwiGLU), as on CUDA
    public void A_llama_model_trains_alike_on_both_paths(bool memoryLean)
    {
        using var lean = memoryLean ? FusedKernels.LeanOnCpu() : null;
        using var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"));
        manual_seed(5);
        var all = new[] { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" };
        PeftInjector.Inject(model, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(all), InitLoraWeights = "false" });
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        foreach (var (name, p) in model.named_parameters())
            p.requires_grad = name.Contains("lora_") || name.Contains("norm"); // norms too: their weight gradient
        trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        using var ids = randint(3, 300, [2, 12], generator: Seed(15));

        (float Loss, Dictionary<string, Tensor> Grads) Step(bool composite)
        {
            using (composite ? FusedKernels.Composite() : null)
                return TrainerFixtures.LossAndGradients(trainable, () => CausalLMLoss.ModelTokenSum(model, ids, ids) / (2 * 11.0));
        }

        var fused = Step(composite: false);
        var plain = Step(composite: true);
        Assert.Equal(plain.Loss, fused.Loss, 5);
        foreach (var (name, g) in plain.Grads)
            Close(g, fused.Grads[name], 1e-4, name);
    }
}
