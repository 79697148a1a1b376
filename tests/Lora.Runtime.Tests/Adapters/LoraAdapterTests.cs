using Lora.Peft;
using Lora.Tuners.LoRA;
using TorchSharp;

namespace Lora.Runtime.Tests.Adapters;

public class LoraAdapterTests
{
    [Fact]
    public void Default_init_is_kaiming_uniform_A_and_zero_B()
    {
        torch.manual_seed(0);
        using var adapter = new LoraAdapter(256, 32, rank: 16, alpha: 32);
        var bound = 1 / Math.Sqrt(256);
        Assert.True(adapter.LoraA.weight!.abs().max().item<float>() <= bound + 1e-6);
        Assert.True(adapter.LoraA.weight.std().item<float>() > bound / 2); // U(±b) has std b/√3 ≈ 0.58 b
        Assert.Equal(0f, adapter.LoraB.weight!.abs().sum().item<float>());
        Assert.Equal(2.0, adapter.Scaling);
    }

    [Fact]
    public void Gaussian_init_has_std_one_over_rank()
    {
        torch.manual_seed(0);
        using var adapter = new LoraAdapter(4096, 8, rank: 8, alpha: 8, init: LoraInit.Gaussian);
        Assert.Equal(1.0 / 8, adapter.LoraA.weight!.std().item<float>(), 2);
        Assert.Equal(0f, adapter.LoraB.weight!.abs().sum().item<float>());
    }

    [Fact]
    public void Forward_and_delta_weight_are_scaled_B_A()
    {
        torch.manual_seed(0);
        using var adapter = new LoraAdapter(6, 5, rank: 4, alpha: 8, useRsLora: true, init: LoraInit.Random);
        Assert.Equal(8 / 2.0, adapter.Scaling);
        using var x = torch.randn(3, 6);
        using var y = adapter.Delta(x);
        using var expected = x.matmul(adapter.LoraA.weight!.t()).matmul(adapter.LoraB.weight!.t()) * adapter.Scaling;
        Assert.True(y.allclose(expected, rtol: 1e-5, atol: 1e-6));
        using var delta = adapter.DeltaWeight();
        Assert.Equal(new long[] { 5, 6 }, delta.shape);
        Assert.True(x.matmul(delta.t()).allclose(expected, rtol: 1e-5, atol: 1e-6));
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(4, 1.0)]
    [InlineData(4, -0.1)]
    public void Invalid_rank_or_dropout_is_refused(int rank, double dropout)
    {
        Assert.Throws<LoraException>(() => new LoraAdapter(4, 4, rank, 8, dropout: dropout));
    }

    [Fact]
    public void Parameter_names_are_peft_key_suffixes()
    {
        using var adapter = new LoraAdapter(4, 4, 2, 4, loraBias: true);
        var names = adapter.named_parameters().Select(p => p.name).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "lora_A.weight", "lora_B.bias", "lora_B.weight" }, names);
    }
}
