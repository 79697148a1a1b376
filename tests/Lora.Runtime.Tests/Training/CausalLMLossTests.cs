using Lora.Models;
using Lora.Peft;
using Lora.Training;
using Lora.Tuners.LoRA;
using TorchSharp;

namespace Lora.Runtime.Tests.Training;

public class CausalLMLossTests
{
    [Fact]
    public void Sums_shifted_cross_entropy_over_unignored_labels()
    {
        torch.manual_seed(1);
        using var logits = torch.randn(2, 4, 5);
        using var labels = torch.tensor(new long[] { 0, 1, 2, 3, -100, -100, 4, 0 }, [2, 4]);
        var (sum, tokens) = LossOf(logits, labels);

        // By hand: position t predicts label t+1; ignored labels do not count.
        double expected = 0;
        long count = 0;
        var lp = torch.nn.functional.log_softmax(logits, -1);
        for (var b = 0; b < 2; b++)
        {
            for (var t = 0; t < 3; t++)
            {
                var label = labels[b, t + 1].item<long>();
                if (label == -100)
                    continue;
                expected -= lp[b, t, label].item<float>();
                count++;
            }
        }

        Assert.Equal(5, tokens);
        Assert.Equal(count, tokens);
        Assert.Equal(expected, sum, 5);
    }

    /// <summary>The fused head + cross-entropy (chunked, gradient in the forward pass) gives the loss and the
    /// gradients of the plain logits path: chunks that do not divide the tokens, ignored labels, bf16 and fp32.</summary>
    [Theory]
    [InlineData(torch.ScalarType.Float32, 1e-5, 1e-5)]
    [InlineData(torch.ScalarType.BFloat16, 1e-3, 2e-2)] // bf16 matmuls of a chunk round differently from the whole
    public void Fused_linear_cross_entropy_matches_the_logits_path(torch.ScalarType dtype, double lossRtol, double rtol)
    {
        torch.manual_seed(2);
        using var scope = torch.NewDisposeScope();
        var weight = (torch.randn(37, 16) * 0.3).to(dtype);
        var bias = torch.randn(37).to(dtype);
        var labels = torch.randint(0, 37, [3, 9], dtype: torch.ScalarType.Int64);
        labels[0, 3] = torch.tensor(-100L);
        labels[2, torch.TensorIndex.Slice(5)] = torch.tensor(-100L);
        var x = torch.randn(3, 9, 16);
        var hidden1 = x.clone().to(dtype).requires_grad_(true);
        var hidden2 = x.clone().to(dtype).requires_grad_(true);

        var plain = CausalLMLoss.TokenSum(torch.nn.functional.linear(hidden1, weight, bias), labels);
        var fused = CausalLMLoss.FusedLinearTokenSum(hidden2, weight, bias, labels, chunkTokens: 5); // 24 tokens: 5 chunks
        (plain * 0.5).backward();
        (fused * 0.5).backward();
        GradientCheckpoint.ReleasePending();

        Assert.Equal(plain.item<float>(), fused.item<float>(), Math.Abs(plain.item<float>()) * lossRtol);
        var g1 = hidden1.grad!.to(torch.ScalarType.Float32);
        var g2 = hidden2.grad!.to(torch.ScalarType.Float32);
        var error = ((g1 - g2).abs().max() / g1.abs().max()).item<float>();
        Assert.True(error < rtol, $"gradient differs by {error} of its largest entry");
        Assert.Equal(0f, g2[2, torch.TensorIndex.Slice(4)].abs().sum().item<float>()); // positions whose label is ignored
    }

    /// <summary>Prompt tuning / P-tuning logits carry n virtual positions in front: both sums pad the labels with
    /// -100 there (PEFT's PeftModelForCausalLM.forward), so the last virtual position predicts the first token.</summary>
    [Fact]
    public void Virtual_positions_in_front_of_the_logits_get_ignored_labels()
    {
        torch.manual_seed(3);
        using var scope = torch.NewDisposeScope();
        var logits = torch.randn(2, 3 + 4, 5);
        var labels = torch.tensor(new long[] { 0, 1, 2, 3, -100, -100, 4, 0 }, [2, 4]);
        var padded = torch.cat([torch.full(2, 3, -100L, torch.ScalarType.Int64), labels], 1);
        var expected = CausalLMLoss.TokenSum(logits, padded).item<float>();
        Assert.Equal(expected, CausalLMLoss.TokenSum(logits, labels).item<float>(), 5);
        var (sum, tokens) = CausalLMLoss.Sum(logits, labels);
        Assert.Equal(expected, sum.item<float>(), 5);
        Assert.Equal(6, tokens); // every label that is not -100, the first ones included
    }

    /// <summary>
    /// The training loss with a prompt-learning adapter is the loss of the full forward pass (virtual tokens, prefixes),
    /// not the fused head over <see cref="CausalLM.ForwardHidden"/>, which the adapter does not enter; with a LoRA
    /// adapter (frozen dense head) the fused path gives the plain loss.
    /// </summary>
    [Theory]
    [InlineData("prefix")]
    [InlineData("prompt")]
    [InlineData("ptuning")]
    [InlineData("lora")]
    public void ModelTokenSum_takes_the_full_forward_pass_with_a_prompt_learning_adapter(string method)
    {
        torch.manual_seed(4);
        using var scope = torch.NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        PeftInjector.Inject(model, method == "lora"
            ? new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) }
            : Adapters.PromptLearningTests.ConfigFor(method));
        model.train();
        var ids = torch.tensor(new long[] { 5, 17, 42, 8, 99, 3, 7, 1, 11, 23, 4, 60 }, [2, 6]);
        var labels = ids.clone();
        labels[0, 0] = torch.tensor(-100L);

        var loss = CausalLMLoss.ModelTokenSum(model, ids, labels).item<float>();
        var plain = CausalLMLoss.TokenSum(model.Forward(ids), labels).item<float>();
        Assert.Equal(plain, loss, Math.Abs(plain) * 1e-5);
        if (method != "lora")
        {
            var bypassed = CausalLMLoss.TokenSum(model.LogitsOf(model.ForwardHidden(ids)!), labels).item<float>();
            Assert.True(Math.Abs(bypassed - plain) > 1e-3, $"{method}: the adapter should change the loss ({bypassed} vs {plain})");
        }
    }

    private static (double, long) LossOf(torch.Tensor logits, torch.Tensor labels)
    {
        var (sum, tokens) = CausalLMLoss.Sum(logits, labels);
        using (sum)
            return (sum.item<float>(), tokens);
    }
}
