using System.Globalization;
using System.Text;

namespace Lora.Tokenization;

/// <summary>
/// tokenizer.json's <c>decoder</c>: turns token strings back into text, step by step over the token list as HF's
/// <c>decode_chain</c> does. Microsoft.ML.Tokenizers decodes with its own fixed rules per model, which differ from
/// HF's chain (Strip, Fuse and ByteFallback ordering), so the chain is reproduced here.
/// </summary>
internal sealed class HfDecoder
{
    private readonly Func<List<string>, List<string>>? _chain;

    private HfDecoder(Func<List<string>, List<string>>? chain) => _chain = chain;

    public string Decode(List<string> tokens) =>
        _chain is null ? string.Join(' ', tokens) : string.Concat(_chain(tokens)); // HF joins with spaces when no decoder

    public static HfDecoder Parse(JsonFields? node) => new(node is null ? null : Build(node.Value));

    private static Func<List<string>, List<string>> Build(JsonFields node)
    {
        var type = node.String("type");
        switch (type)
        {
            case "Sequence":
                var steps = node.Child("decoders").Items().Select(Build).ToArray();
                return tokens => steps.Aggregate(tokens, (acc, step) => step(acc));
            case "ByteLevel":
                return ByteLevel;
            case "ByteFallback":
                return ByteFallback;
            case "Fuse":
                return tokens => [string.Concat(tokens)];
            case "Replace":
                var pattern = HfNormalizer.Pattern.Parse(node.Child("pattern"));
                var content = node.String("content");
                return tokens => tokens.Select(t => pattern.Replace(t, content)).ToList();
            case "Strip":
                var strip = node.String("content");
                var start = node.Child("start").AsInt();
                var stop = node.Child("stop").AsInt();
                if (strip.Length != 1)
                {
                    throw node.Child("content").Error("expected one character");
                }

                return tokens => tokens.Select(t => Strip(t, strip[0], start, stop)).ToList();
            case "Metaspace":
                var replacement = node.String("replacement");
                var scheme = node.OptionalString("prepend_scheme") ?? (node.Bool("add_prefix_space", true) ? "always" : "never");
                return tokens => tokens.Select((t, i) => Metaspace(t, replacement, dropLeading: i == 0 && scheme != "never")).ToList();
            case "BPEDecoder":
                var suffix = node.OptionalString("suffix") ?? "</w>";
                return tokens => tokens.Select((t, i) => t.Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal)).ToList();
            default:
                throw node.Child("type").Error($"decoder type \"{type}\" is not supported");
        }
    }

    // All tokens become one string; a token with characters outside the byte alphabet keeps its own UTF-8 bytes.
    private static List<string> ByteLevel(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
        {
            if (!ByteLevelAlphabet.TryDecode(token, bytes))
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
            }
        }

        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }

    // Runs of <0xXX> tokens become their UTF-8 text, or one U+FFFD per byte when they are not valid UTF-8.
    private static List<string> ByteFallback(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var token in tokens)
        {
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                && byte.TryParse(token.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b))
            {
                pending.Add(b);
                continue;
            }

            Flush(pending, result);
            result.Add(token);
        }

        Flush(pending, result);
        return result;
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0)
        {
            return;
        }

        try
        {
            result.Add(StrictUtf8.GetString(pending.ToArray()));
        }
        catch (DecoderFallbackException)
        {
            result.AddRange(Enumerable.Repeat("\uFFFD", pending.Count));
        }

        pending.Clear();
    }

    private static string Strip(string token, char content, int start, int stop)
    {
        var from = 0;
        while (from < start && from < token.Length && token[from] == content)
        {
            from++;
        }

        var to = token.Length;
        for (var i = 0; i < stop && to > from && token[to - 1] == content; i++)
        {
            to--;
        }

        return token[from..to];
    }

    // As HF: in the first token every replacement character is dropped (not only a leading one).
    private static string Metaspace(string token, string replacement, bool dropLeading) =>
        token.Replace(replacement, dropLeading ? "" : " ", StringComparison.Ordinal);
}
