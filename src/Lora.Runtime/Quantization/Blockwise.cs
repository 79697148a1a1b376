using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Quantization;

/// <summary>
/// bitsandbytes' blockwise kernels as its CPU ("default") backend computes them
/// (<c>bitsandbytes/backends/default/ops.py</c>: <c>quantize_4bit</c>, <c>_dequantize_4bit_compute</c>,
/// <c>quantize_blockwise</c>, <c>_dequantize_blockwise_compute</c>), so codes and scales are bit-identical:
/// <list type="bullet">
/// <item>the tensor is flattened (row-major) in fp32 and cut into blocks of <c>blocksize</c>; each block's scale is
/// its absmax (fp32); full blocks are scaled by <c>x · (1 / max(absmax, 1e-38))</c>, the tail block by
/// <c>x / max(absmax, 1e-38)</c>, then clamped to [−1, 1];</item>
/// <item>each value takes the code whose interval holds it: <c>bucketize</c> over the fp32 midpoints of the sorted
/// table (a value on a midpoint takes the lower code); FP4's indices are its bit patterns, so the rank is mapped back
/// through the table's <c>argsort</c>;</item>
/// <item>4-bit codes are packed two per byte, the first element in the high nibble, as a <c>[ceil(n/2), 1]</c>
/// uint8 tensor (an odd count is padded with a zero value);</item>
/// <item>dequantization is <c>code[q] · absmax[block]</c> in fp32, then cast to the requested dtype.</item>
/// </list>
/// </summary>
public static class Blockwise
{
    /// <summary>The block sizes bitsandbytes accepts for 4-bit weights.</summary>
    public static IReadOnlyList<int> FourBitBlocksizes { get; } = [32, 64, 128, 256, 512, 1024, 2048, 4096];

    /// <summary>The block size of the double quantization of the 4-bit scales (<c>quantize_4bit</c>:
    /// <c>quantize_blockwise(absmax - offset, blocksize=256)</c>).</summary>
    public const int NestedBlocksize = 256;

    /// <summary>Quantizes <paramref name="a"/> (fp32/bf16/fp16, any shape) to packed 4-bit codes
    /// <c>[ceil(n/2), 1]</c> uint8 and fp32 block scales <c>[ceil(n/blocksize)]</c>.</summary>
    public static (Tensor Packed, Tensor Absmax) Quantize4Bit(Tensor a, QuantizationType type, int blocksize)
    {
        CheckFourBitBlocksize(blocksize);
        using var scope = NewDisposeScope();
        var (scaled, absmax) = Scale(a, blocksize);
        if (scaled.shape[0] % 2 == 1)
            scaled = nn.functional.pad(scaled, [0, 1]);
        var (bounds, rankToCode) = FourBitBounds(type);
        var q = bucketize(scaled, tensor(bounds, device: a.device), true, false);
        if (rankToCode is not null)
            q = tensor(rankToCode, device: a.device).index_select(0, q);
        var pairs = q.to(ScalarType.Byte).view(-1, 2);
        var packed = pairs.select(1, 0) * 16 + pairs.select(1, 1);
        return (packed.unsqueeze(1).MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>Unpacks <paramref name="packed"/> into <paramref name="shape"/> with <paramref name="code"/>
    /// (the 16-entry table, fp32) and fp32 block scales, in fp32, then casts to <paramref name="dtype"/>.</summary>
    public static Tensor Dequantize4Bit(Tensor packed, Tensor absmax, Tensor code, int blocksize, long[] shape, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var n = shape.Aggregate(1L, (x, y) => x * y);
        // code[high nibble], code[low nibble] of every byte value: one lookup per byte instead of per nibble.
        var bytes = arange(256, ScalarType.Int32, packed.device);
        var sixteen = tensor(16, ScalarType.Int32, packed.device);
        var pairTable = stack([code.index_select(0, bytes.floor_divide(sixteen)), code.index_select(0, bytes.remainder(sixteen))], 1);
        var values = pairTable.index_select(0, packed.reshape(-1).to(ScalarType.Int32)).view(-1).narrow(0, 0, n);
        return ApplyScales(values, absmax, blocksize).view(shape).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>8-bit blockwise quantization with a sorted 256-entry <paramref name="code"/> (bitsandbytes'
    /// <c>quantize_blockwise</c>): uint8 codes shaped like <paramref name="a"/> and fp32 block scales.</summary>
    public static (Tensor Codes, Tensor Absmax) Quantize8Bit(Tensor a, Tensor code, int blocksize)
    {
        using var scope = NewDisposeScope();
        var (scaled, absmax) = Scale(a, blocksize);
        var sorted = code.to(ScalarType.Float32);
        var bounds = (sorted.narrow(0, 0, sorted.shape[0] - 1) + sorted.narrow(0, 1, sorted.shape[0] - 1)) / 2;
        var q = bucketize(scaled, bounds, true, false).to(ScalarType.Byte).view(a.shape);
        return (q.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>Inverse of <see cref="Quantize8Bit"/>: <c>code[q] · absmax[block]</c> in fp32, cast to
    /// <paramref name="dtype"/>.</summary>
    public static Tensor Dequantize8Bit(Tensor codes, Tensor absmax, Tensor code, int blocksize, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var values = code.index_select(0, codes.reshape(-1).to(ScalarType.Int32));
        return ApplyScales(values, absmax, blocksize).view(codes.shape).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Throws unless <paramref name="blocksize"/> is one bitsandbytes accepts for 4-bit weights.</summary>
    public static void CheckFourBitBlocksize(int blocksize)
    {
        if (!FourBitBlocksizes.Contains(blocksize))
            throw new LoraException($"blocksize {blocksize} is not one bitsandbytes supports for 4-bit weights ({string.Join(", ", FourBitBlocksizes)}).");
    }

    /// <summary>The flattened fp32 values scaled into [−1, 1] per block, and the fp32 block absmax.</summary>
    private static (Tensor Scaled, Tensor Absmax) Scale(Tensor a, int blocksize)
    {
        var flat = a.reshape(-1).to(ScalarType.Float32);
        var n = flat.shape[0];
        var rem = n % blocksize;
        var full = n - rem;
        var parts = new List<Tensor>(2);
        var scales = new List<Tensor>(2);
        if (full > 0)
        {
            var blocks = flat.narrow(0, 0, full).view(-1, blocksize);
            var absmax = blocks.abs().amax([-1]);
            parts.Add((blocks * absmax.clamp_min(1e-38).reciprocal().view(-1, 1)).clamp(-1, 1).reshape(-1));
            scales.Add(absmax);
        }

        if (rem > 0)
        {
            var tail = flat.narrow(0, full, rem);
            var am = tail.abs().max().clamp_min(1e-38);
            parts.Add((tail / am).clamp(-1, 1));
            scales.Add(am.unsqueeze(0));
        }

        return parts.Count == 1 ? (parts[0], scales[0]) : (cat(parts, 0), cat(scales, 0));
    }

    /// <summary><c>values · absmax[block]</c> (fp32), the tail block scaled by the last absmax.</summary>
    private static Tensor ApplyScales(Tensor values, Tensor absmax, int blocksize)
    {
        var n = values.shape[0];
        var rem = n % blocksize;
        var full = n - rem;
        if (rem == 0)
            return (values.view(-1, blocksize) * absmax.view(-1, 1)).view(-1);
        var blocks = full / blocksize;
        var head = (values.narrow(0, 0, full).view(-1, blocksize) * absmax.narrow(0, 0, blocks).view(-1, 1)).view(-1);
        var tail = values.narrow(0, full, rem) * absmax[blocks];
        return cat([head, tail], 0);
    }

    /// <summary>The fp32 midpoints of the sorted table, and (FP4) the map from rank to code index.</summary>
    private static (float[] Bounds, long[]? RankToCode) FourBitBounds(QuantizationType type)
    {
        var code = CodeTables.FourBit(type);
        // _get_4bit_quantize_bounds: order = argsort(code); NF4 is sorted already. The stable order puts FP4's two
        // zeros (indices 0 and 8) as torch's CPU argsort does: 0 first.
        var order = Enumerable.Range(0, code.Count).OrderBy(i => code[i]).ToArray();
        var bounds = new float[code.Count - 1];
        for (var i = 0; i < bounds.Length; i++)
            bounds[i] = (code[order[i]] + code[order[i + 1]]) / 2f;
        var identity = order.Select((o, i) => o == i).All(x => x);
        return (bounds, identity ? null : order.Select(o => (long)o).ToArray());
    }
}
