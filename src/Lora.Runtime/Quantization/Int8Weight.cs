using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Quantization;

/// <summary>
/// An LLM.int8() weight as bitsandbytes' <c>Int8Params</c> / <c>Linear8bitLt</c> hold it: <c>CB</c>, the int8 codes
/// <c>(out, in)</c>, and <c>SCB</c>, the fp32 absmax of each output row, with <c>CB = round(w · 127 / SCB)</c>
/// computed on the fp16 weight (<c>Int8Params._quantize</c> → <c>int8_vectorwise_quant(B.to(float16))</c>). Saved as
/// <c>weight</c> (int8), <c>SCB</c> and <c>weight_format</c> (uint8 0, "row"), as <c>Linear8bitLt._save_to_state_dict</c>.
/// The matmul is LLM.int8()'s (<see cref="Matmul"/>).
/// </summary>
public sealed class Int8Weight : IDisposable
{
    /// <summary>Key suffixes relative to the layer.</summary>
    public const string WeightName = "weight", ScaleName = "SCB", FormatName = "weight_format";

    /// <summary>bitsandbytes' 1/127 constants: <c>int8_vectorwise_dequant</c> and <c>int8_mm_dequant</c>
    /// (1/127² as fp32, rounded as there).</summary>
    private const double DequantScale = 7.874015718698502e-3, MatmulDequantScale = 6.200124e-05;

    private Int8Weight(Tensor codes, Tensor scales, ScalarType dtype)
    {
        Codes = codes;
        Scales = scales;
        DType = dtype;
    }

    /// <summary><c>CB</c>: int8 <c>(out, in)</c>.</summary>
    public Tensor Codes { get; private set; }

    /// <summary><c>SCB</c>: fp32 <c>(out)</c>, each row's absmax.</summary>
    public Tensor Scales { get; private set; }

    /// <summary>The dtype the weight had (it dequantizes to it).</summary>
    public ScalarType DType { get; }

    public long OutFeatures => Codes.shape[0];

    public long InFeatures => Codes.shape[1];

    /// <summary>Row-wise quantization of <paramref name="weight"/> <c>(out, in)</c> through fp16, as bitsandbytes.</summary>
    public static Int8Weight Quantize(Tensor weight)
    {
        using var scope = NewDisposeScope();
        var (codes, scales) = VectorwiseQuantize(weight.to(ScalarType.Float16));
        return new Int8Weight(codes.DetachFromDisposeScope(), scales.DetachFromDisposeScope(), weight.dtype);
    }

    /// <summary>A saved weight: <paramref name="codes"/> int8 <c>(out, in)</c> and <paramref name="scales"/> fp32 <c>(out)</c>.</summary>
    public static Int8Weight FromState(Tensor codes, Tensor scales, ScalarType dtype, string where)
    {
        if (codes.dtype != ScalarType.Int8 || codes.ndim != 2)
            throw new LoraException($"{where}: an int8 weight must be a 2-D int8 tensor, got {codes.dtype} ({string.Join(", ", codes.shape)}).");
        if (scales.numel() != codes.shape[0])
            throw new LoraException($"{where}: SCB has {scales.numel()} scales for {codes.shape[0]} rows.");
        using var scope = NewDisposeScope();
        return new Int8Weight(codes.alias().DetachFromDisposeScope(), scales.reshape(-1).to(ScalarType.Float32).DetachFromDisposeScope(), dtype);
    }

    /// <summary><c>int8_vectorwise_dequant</c>: <c>CB · SCB · (1/127)</c> in fp32, cast to <paramref name="dtype"/>
    /// (default: <see cref="DType"/>).</summary>
    public Tensor Dequantize(ScalarType? dtype = null)
    {
        using var scope = NewDisposeScope();
        return (Codes * Scales.view(-1, 1) * DequantScale).to(dtype ?? DType).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// LLM.int8()'s forward (<c>MatMul8bitLt.forward</c> with the default backend's kernels), <c>x (N, in) → (N, out)</c>
    /// in <c>x</c>'s dtype: <c>x</c> is cast to fp16 and quantized row-wise (<c>int8_vectorwise_quant</c>) after
    /// zeroing every |x| ≥ <paramref name="threshold"/>; the int8 product (exact integer sums, computed in fp32 as the
    /// default backend does) is scaled by <c>SCA · SCB / 127²</c> and the bias added in fp32. When
    /// <paramref name="threshold"/> &gt; 0, the input columns holding an outlier are left out of the int8 product and
    /// added back in <c>x</c>'s dtype against the dequantized weight columns (the mixed-precision decomposition).
    /// </summary>
    public Tensor Matmul(Tensor x, Tensor? bias, double threshold)
    {
        using var scope = NewDisposeScope();
        var a16 = x.to(ScalarType.Float16);
        Tensor? outlierColumns = null;
        if (threshold > 0)
        {
            var outliers = a16.abs().ge(threshold);
            if (outliers.any().item<bool>())
            {
                outlierColumns = outliers.any(0).nonzero().view(-1);
                a16 = a16.masked_fill(outliers, 0);
            }
        }

        var (ca, sca) = VectorwiseQuantize(a16);
        if (outlierColumns is not null)
            ca.index_fill_(1, outlierColumns, 0);

        // int8_scaled_mm → int8_linear_matmul (fp32 matmul of the codes, truncated to int32) → int8_mm_dequant.
        var product = ca.to(ScalarType.Float32).matmul(Codes.to(ScalarType.Float32).t()).to(ScalarType.Int32);
        var output = product * (sca.unsqueeze(-1) * Scales.unsqueeze(0)) * MatmulDequantScale;
        if (bias is not null)
            output = output + bias;
        output = output.to(x.dtype);
        if (outlierColumns is not null)
        {
            var subA = x.index_select(1, outlierColumns);
            var subB = (Codes.index_select(1, outlierColumns) * Scales.view(-1, 1) * DequantScale).to(x.dtype).t();
            output = output.addmm(subA, subB);
        }

        return output.MoveToOuterDisposeScope();
    }

    /// <summary>The gradient of <see cref="Matmul"/> with respect to <c>x</c>, as <c>MatMul8bitLt.backward</c>:
    /// <c>grad · (CB · SCB/127)</c> in <paramref name="dtype"/>.</summary>
    public Tensor InputGradient(Tensor grad, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var weight = (Codes.to(dtype) * Scales.unsqueeze(1).mul(1.0 / 127.0)).to(dtype); // CB.to(dtype).mul_(SCB / 127)
        return grad.to(dtype).matmul(weight).MoveToOuterDisposeScope();
    }

    /// <summary>The tensors the weight keeps, by checkpoint key relative to the layer: <c>weight</c>, <c>SCB</c>.</summary>
    public IEnumerable<(string Name, Tensor Value)> Tensors() => [(WeightName, Codes), (ScaleName, Scales)];

    /// <summary><c>weight_format</c>: a uint8 scalar, 0 = "row" (the only layout bitsandbytes still writes).</summary>
    public static (string Name, Tensor Value) FormatEntry() => (FormatName, tensor((byte)0));

    /// <summary>Bits stored per weight element (codes and row scales).</summary>
    public double BitsPerParameter => (Codes.numel() + Scales.numel() * 4.0) * 8.0 / Codes.numel();

    /// <summary>Takes the tensors a module holds again after it moved them.</summary>
    public void Rebind(Func<string, Tensor> buffer)
    {
        Codes = buffer(WeightName);
        Scales = buffer(ScaleName);
    }

    public void Dispose()
    {
        Codes.Dispose();
        Scales.Dispose();
    }

    /// <summary><c>int8_vectorwise_quant</c> without outliers: row absmax (fp32) and <c>round(A · (127 / absmax))</c>,
    /// where Python's <c>127.0 / t</c> is <c>t.reciprocal() · 127</c>.</summary>
    private static (Tensor Codes, Tensor Scales) VectorwiseQuantize(Tensor a16)
    {
        var rowStats = a16.abs().amax([1]).to(ScalarType.Float32);
        var codes = (a16 * (rowStats.reciprocal() * 127.0).unsqueeze(-1)).round().to(ScalarType.Int8);
        return (codes, rowStats);
    }
}
