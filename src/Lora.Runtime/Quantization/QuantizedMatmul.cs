using Lora.Backend;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Lora.Quantization;

/// <summary>
/// The matmuls of the frozen quantized bases, with gradients for the input (and a bias) and never for the weight.
/// They are autograd functions, as bitsandbytes' <c>MatMul4Bit</c> and <c>MatMul8bitLt</c>
/// (<c>bitsandbytes/autograd/_functions.py</c>), so the backward pass dequantizes the weight again instead of
/// keeping a dense copy of every layer's weight alive between forward and backward — which would give back the
/// memory quantization saved.
/// </summary>
public static class QuantizedMatmul
{
    /// <summary>
    /// <c>Linear4bit.forward</c>: <c>x</c> and the bias are cast to <paramref name="computeDType"/>, the weight is
    /// dequantized (fp32 → its original dtype → the compute dtype, as <c>dequantize_4bit(...).to(A.dtype)</c>), a
    /// dense <c>linear</c> runs, and the result is cast back to <c>x</c>'s dtype.
    /// </summary>
    public static Tensor FourBit(Tensor x, FourBitWeight weight, Tensor? bias, ScalarType computeDType)
    {
        using var scope = NewDisposeScope();
        var input = x.dtype == computeDType ? x : x.to(computeDType);
        var b = bias is null ? null : bias.dtype == computeDType ? bias : bias.to(computeDType);
        Tensor y;
        if (is_grad_enabled() && (input.requires_grad || b?.requires_grad == true))
        {
            y = FourBitFunction.apply(input, b, weight);
        }
        else
        {
            using var dense = weight.Dequantize().to(computeDType);
            y = nn.functional.linear(input, dense, b);
        }

        return (y.dtype == x.dtype ? y : y.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>Linear8bitLt.forward</c> (<c>bnb.matmul</c> → <c>MatMul8bitLt</c>): the bias is cast to <c>x</c>'s dtype and
    /// the LLM.int8() product of <see cref="Int8Weight.Matmul"/> runs over the flattened batch.
    /// </summary>
    public static Tensor Int8(Tensor x, Int8Weight weight, Tensor? bias, double threshold)
    {
        using var scope = NewDisposeScope();
        var b = bias is null ? null : bias.dtype == x.dtype ? bias : bias.to(x.dtype);
        long[] outShape = [.. x.shape[..^1], weight.OutFeatures];
        var flat = x.reshape(-1, weight.InFeatures);
        var y = is_grad_enabled() && (flat.requires_grad || b?.requires_grad == true)
            ? Int8Function.apply(flat, b, weight, threshold)
            : weight.Matmul(flat, b, threshold);
        return y.view(outShape).MoveToOuterDisposeScope();
    }

    private sealed class FourBitFunction : SingleTensorFunction<FourBitFunction>
    {
        private const string WeightKey = "weight";

        public override string Name => "FourBitMatmul";

        public override Tensor forward(AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var bias = vars[1] as Tensor;
            var weight = (FourBitWeight)vars[2];
            ctx.save_data(WeightKey, weight);
            ctx.save_data("bias", bias is not null);
            using var dense = weight.Dequantize().to(x.dtype);
            return nn.functional.linear(x, dense, bias);
        }

        public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
        {
            var weight = (FourBitWeight)ctx.get_data(WeightKey);
            Tensor gradInput;
            Tensor? gradBias = null;
            using (var scope = NewDisposeScope())
            {
                using var dense = weight.Dequantize().to(gradOutput.dtype);
                gradInput = gradOutput.matmul(dense).DetachFromDisposeScope();
                if ((bool)ctx.get_data("bias"))
                    gradBias = gradOutput.reshape(-1, gradOutput.shape[^1]).sum(dim: 0).DetachFromDisposeScope(); // dim: a bare 0 binds to sum(ScalarType)
            }

            gradOutput.Dispose();
            return PendingGradients.Return(gradInput, gradBias, null);
        }
    }

    private sealed class Int8Function : SingleTensorFunction<Int8Function>
    {
        private const string WeightKey = "weight";

        public override string Name => "Int8Matmul";

        public override Tensor forward(AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var bias = vars[1] as Tensor;
            var weight = (Int8Weight)vars[2];
            ctx.save_data(WeightKey, weight);
            ctx.save_data("bias", bias is not null);
            ctx.save_data("dtype", x.dtype);
            return weight.Matmul(x, bias, (double)vars[3]);
        }

        public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
        {
            var weight = (Int8Weight)ctx.get_data(WeightKey);
            var gradInput = weight.InputGradient(gradOutput, (ScalarType)ctx.get_data("dtype"));
            Tensor? gradBias = (bool)ctx.get_data("bias") ? gradOutput.sum(dim: 0) : null; // dim: a bare 0 binds to sum(ScalarType)
            gradOutput.Dispose();
            return PendingGradients.Return(gradInput, gradBias, null, null);
        }
    }
}
