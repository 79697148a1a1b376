namespace Lora.Tokenization;

/// <summary>
/// GPT-2's reversible byte ↔ printable-character map used by byte-level BPE (Llama 3, Qwen): every UTF-8 byte is
/// written as one visible character so that vocabularies stay valid JSON strings. Microsoft.ML.Tokenizers keeps its
/// copy internal; we need it to look whole words up (<c>ignore_merges</c>) and to run the ByteLevel decoder.
/// </summary>
public static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();

    /// <summary>UTF-8 encodes <paramref name="text"/> and maps each byte to its visible character.</summary>
    public static string Encode(string text) => Encode(System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Maps each byte to its visible character.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            chars[i] = ByteToChar[bytes[i]];
        }

        return new string(chars);
    }

    /// <summary>Maps the token's characters back to bytes; false when a character is outside the alphabet
    /// (HF's decoder then keeps that token's own UTF-8 bytes).</summary>
    public static bool TryDecode(string token, List<byte> bytes)
    {
        var start = bytes.Count;
        foreach (var c in token)
        {
            if (!CharToByte.TryGetValue(c, out var b))
            {
                bytes.RemoveRange(start, bytes.Count - start);
                return false;
            }

            bytes.Add(b);
        }

        return true;
    }

    // Printable Latin-1 bytes map to themselves; the rest (controls, space, 0x7F-0xA0, 0xAD) to U+0100 onwards.
    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }

        return map;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var map = new Dictionary<char, byte>(256);
        for (var b = 0; b < 256; b++)
        {
            map[ByteToChar[b]] = (byte)b;
        }

        return map;
    }
}
