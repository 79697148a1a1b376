using Lora.Quantization;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Quantization;

/// <summary>LLM.int8() against bitsandbytes' default backend (<c>quant/bnb_reference.safetensors</c>): codes and
/// scales exact, the matmul with and without the outlier decomposition, and its gradient.</summary>
public class Int8Tests
{
    [Fact]
    public void Codes_and_row_scales_equal_bitsandbytes()
    {
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(BlockwiseTests.BnbFixture);
        using var w = Int8Weight.Quantize(file.Load("int8.weight_fp32"));
        Assert.True(Bits.Equal(w.Codes, file.Load("int8.CB")), "CB differs");
        Assert.True(Bits.Equal(w.Scales, file.Load("int8.SCB")), "SCB differs");
        Assert.True(Bits.Equal(w.Dequantize(ScalarType.Float32), file.Load("int8.dequant")), "dequantized weight differs");
    }

    [Theory]
    [InlineData(6.0, "int8.x", "int8.y_threshold6")]
    [InlineData(0.0, "int8.x", "int8.y_threshold0")]
    [InlineData(6.0, "int8.x_bf16", "int8.y_bf16_threshold6")]
    public void Matmul_equals_bitsandbytes(double threshold, string input, string output)
    {
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(BlockwiseTests.BnbFixture);
        using var w = Int8Weight.FromState(file.Load("int8.CB"), file.Load("int8.SCB"), ScalarType.Float32, "fixture");
        var x = file.Load(input);
        var y = w.Matmul(x, file.Load("int8.bias").to(x.dtype), threshold);
        var expected = file.Load(output);
        Assert.Equal(expected.dtype, y.dtype);
        // The int8 part is exact integer arithmetic; the outlier columns' 16-bit product may sum in another order.
        var diff = (y.to(ScalarType.Float32) - expected.to(ScalarType.Float32)).abs().max().item<float>();
        var tolerance = x.dtype == ScalarType.BFloat16 ? 1e-2f : 1e-5f;
        Assert.True(diff <= tolerance, $"max |ours − bnb| = {diff}");
        if (threshold == 0)
            Assert.True(Bits.Equal(y, expected), "threshold 0 is integer arithmetic throughout: bit for bit");
    }

    [Fact]
    public void Outlier_decomposition_is_closer_to_the_dense_product_than_plain_int8()
    {
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(BlockwiseTests.BnbFixture);
        var weight = file.Load("int8.weight_fp32");
        var bias = file.Load("int8.bias");
        var x = file.Load("int8.x"); // rows 1, 2 and 4 hold |x| ≥ 6 in columns 3 and 17
        using var w = Int8Weight.Quantize(weight);
        var dense = nn.functional.linear(x, weight, bias);
        var mixed = w.Matmul(x, bias, 6.0);
        var plain = w.Matmul(x, bias, 0.0);
        var mixedErr = (mixed - dense).abs().max().item<float>();
        var plainErr = (plain - dense).abs().max().item<float>();
        // Within LLM.int8()'s error: the product of two 8-bit roundings, relative to the output scale.
        var scale = dense.abs().max().item<float>();
        Assert.True(mixedErr <= 0.02f * scale, $"mixed error {mixedErr} vs scale {scale}");
        Assert.True(mixedErr < plainErr, $"outlier columns in 16 bits ({mixedErr}) should beat int8 everywhere ({plainErr})");
    }

    [Fact]
    public void Gradient_reaches_the_input_as_bitsandbytes_computes_it()
    {
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(BlockwiseTests.BnbFixture);
        using var w = Int8Weight.FromState(file.Load("int8.CB"), file.Load("int8.SCB"), ScalarType.Float32, "fixture");
        var x = file.Load("int8.x").requires_grad_(true);
        var upstream = randn([5, 48], generator: new Generator(1));
        var y = QuantizedMatmul.Int8(x, w, null, 6.0);
        y.backward([upstream]);
        Lora.Training.GradientCheckpoint.ReleasePending();
        // MatMul8bitLt.backward: grad_A = grad @ (CB · SCB / 127).
        var expected = upstream.matmul(w.Codes.to(ScalarType.Float32) * w.Scales.unsqueeze(1).mul(1.0 / 127.0));
        Assert.True(x.grad!.allclose(expected, 1e-6, 1e-6));
    }
}
