using Lora.Training;
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

    private static (double, long) LossOf(torch.Tensor logits, torch.Tensor labels)
    {
        var (sum, tokens) = CausalLMLoss.Sum(logits, labels);
        using (sum)
            return (sum.item<float>(), tokens);
    }
}
