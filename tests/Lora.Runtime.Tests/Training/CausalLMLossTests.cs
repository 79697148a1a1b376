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

    private static (double, long) LossOf(torch.Tensor logits, torch.Tensor labels)
    {
        var (sum, tokens) = CausalLMLoss.Sum(logits, labels);
        using (sum)
            return (sum.item<float>(), tokens);
    }
}
