using System.Buffers.Binary;

namespace Lora.Gguf;

/// <summary>
/// Converts fp32 rows into ggml's storage types, as llama.cpp's <c>gguf-py/gguf/quants.py</c> does:
/// F16 (IEEE half, round to nearest even, numpy's <c>astype(float16)</c>), BF16 (<c>__compute_fp32_to_bf16</c>:
/// round to nearest even on the top 16 bits, NaN kept quiet), Q8_0 (<c>Q8_0.quantize_blocks</c>, the layout of
/// <c>block_q8_0</c> in ggml <c>ggml-common.h</c> / <c>quantize_row_q8_0_ref</c> in <c>ggml-quants.c</c>: blocks of 32
/// values, an f16 scale d = max|x| / 127 then 32 int8 q = round-half-away(x / d)).
/// </summary>
public static class GgmlQuant
{
    public const int Q8BlockSize = 32;
    public const int Q8BlockBytes = 2 + Q8BlockSize;

    public static long ByteCount(GgmlType type, long elements) => type switch
    {
        GgmlType.F32 => elements * 4,
        GgmlType.F16 or GgmlType.BF16 => elements * 2,
        GgmlType.Q8_0 => elements / Q8BlockSize * Q8BlockBytes,
        _ => throw new NotSupportedException(type.ToString()),
    };

    public static void Write(Stream stream, GgmlType type, ReadOnlySpan<float> values)
    {
        var buffer = new byte[ByteCount(type, values.Length)];
        Encode(type, values, buffer);
        stream.Write(buffer);
    }

    public static void Encode(GgmlType type, ReadOnlySpan<float> values, Span<byte> output)
    {
        switch (type)
        {
            case GgmlType.F32:
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(output[(i * 4)..], values[i]);
                }

                break;
            case GgmlType.F16:
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(output[(i * 2)..], (Half)values[i]);
                }

                break;
            case GgmlType.BF16:
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(output[(i * 2)..], ToBf16(values[i]));
                }

                break;
            case GgmlType.Q8_0:
                if (values.Length % Q8BlockSize != 0)
                {
                    throw new ArgumentException($"Q8_0 needs a multiple of {Q8BlockSize} values, got {values.Length}");
                }

                for (var b = 0; b < values.Length / Q8BlockSize; b++)
                {
                    var block = values.Slice(b * Q8BlockSize, Q8BlockSize);
                    var amax = 0f;
                    foreach (var x in block)
                    {
                        amax = Math.Max(amax, Math.Abs(x));
                    }

                    var d = amax / 127f;
                    var id = d != 0 ? 1f / d : 0f;
                    var o = output.Slice(b * Q8BlockBytes, Q8BlockBytes);
                    BinaryPrimitives.WriteHalfLittleEndian(o, (Half)d);
                    for (var j = 0; j < Q8BlockSize; j++)
                    {
                        o[2 + j] = unchecked((byte)(sbyte)MathF.Round(block[j] * id, MidpointRounding.AwayFromZero));
                    }
                }

                break;
            default:
                throw new NotSupportedException(type.ToString());
        }
    }

    /// <summary>fp32 → bf16 bits: round to nearest even; NaN becomes a quiet NaN (quants.py).</summary>
    public static ushort ToBf16(float f)
    {
        var n = BitConverter.SingleToUInt32Bits(f);
        if ((n & 0x7fffffff) > 0x7f800000)
        {
            return (ushort)(((n & 0xffff0000) | (64u << 16)) >> 16);
        }

        return (ushort)(((ulong)n + (0x7fff + ((n >> 16) & 1))) >> 16);
    }

    /// <summary>Decodes a Q8_0 buffer back to fp32 (d · q), for tests and error measurement.</summary>
    public static float[] DecodeQ8_0(ReadOnlySpan<byte> data)
    {
        var blocks = data.Length / Q8BlockBytes;
        var result = new float[blocks * Q8BlockSize];
        for (var b = 0; b < blocks; b++)
        {
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(data[(b * Q8BlockBytes)..]);
            for (var j = 0; j < Q8BlockSize; j++)
            {
                result[(b * Q8BlockSize) + j] = d * (sbyte)data[(b * Q8BlockBytes) + 2 + j];
            }
        }

        return result;
    }
}
