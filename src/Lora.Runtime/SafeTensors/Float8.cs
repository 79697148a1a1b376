namespace Lora.SafeTensors;

/// <summary>Decoding tables for the two float8 formats of safetensors (TorchSharp has no float8 type).</summary>
internal static class Float8
{
    /// <summary>e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, 0x7f/0xff are NaN.</summary>
    public static readonly float[] E4M3 = Build(exponentBits: 4, mantissaBits: 3, bias: 7, finiteOnly: true);

    /// <summary>e5m2: 1 sign, 5 exponent (bias 15), 2 mantissa bits; IEEE-style infinities and NaNs.</summary>
    public static readonly float[] E5M2 = Build(exponentBits: 5, mantissaBits: 2, bias: 15, finiteOnly: false);

    private static float[] Build(int exponentBits, int mantissaBits, int bias, bool finiteOnly)
    {
        var table = new float[256];
        var maxExponent = (1 << exponentBits) - 1;
        for (var b = 0; b < 256; b++)
        {
            var sign = (b & 0x80) != 0 ? -1f : 1f;
            var exponent = (b >> mantissaBits) & maxExponent;
            var mantissa = b & ((1 << mantissaBits) - 1);
            float value;
            if (finiteOnly && exponent == maxExponent && mantissa == (1 << mantissaBits) - 1)
                value = float.NaN;
            else if (!finiteOnly && exponent == maxExponent)
                value = mantissa == 0 ? float.PositiveInfinity : float.NaN;
            else if (exponent == 0)
                value = mantissa / (float)(1 << mantissaBits) * MathF.Pow(2, 1 - bias);
            else
                value = (1 + mantissa / (float)(1 << mantissaBits)) * MathF.Pow(2, exponent - bias);
            table[b] = sign * value;
        }

        return table;
    }
}
