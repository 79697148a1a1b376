using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Lora.Tokenization;

/// <summary>
/// A tiktoken rank file (<c>base64-token rank</c> per line: Llama 3's original <c>tokenizer.model</c>, or a
/// <c>*.tiktoken</c> file), encoded by Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/> with Llama 3's split
/// pattern. Tokens are shown in GPT-2 byte-level form, as in the equivalent tokenizer.json.
/// </summary>
internal sealed class TiktokenBackend : TokenizerBackend
{
    /// <summary>Llama 3's pre-tokenizer pattern (cl100k's with digits in runs of up to three).</summary>
    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private readonly TiktokenTokenizer _tiktoken;
    private readonly AddedVocabulary _added;
    private readonly Dictionary<int, byte[]> _bytesById; // TiktokenTokenizer keeps its Encoder/Decoder internal
    private readonly Dictionary<string, int> _idByToken;

    private TiktokenBackend(TiktokenTokenizer tiktoken, AddedVocabulary added, Dictionary<int, byte[]> bytesById)
    {
        _tiktoken = tiktoken;
        _added = added;
        _bytesById = bytesById;
        _idByToken = bytesById.ToDictionary(kv => ByteLevelAlphabet.Encode(kv.Value), kv => kv.Key, StringComparer.Ordinal);
    }

    /// <summary>Whether the file starts like a tiktoken rank file rather than a protobuf.</summary>
    public static bool LooksLikeTiktoken(string path)
    {
        using var stream = File.OpenRead(path);
        var head = new byte[256];
        var read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        var text = Encoding.ASCII.GetString(head, 0, read);
        var line = text.Split('\n')[0].TrimEnd('\r');
        return Regex.IsMatch(line, @"^[A-Za-z0-9+/=]+ [0-9]+$", RegexOptions.CultureInvariant);
    }

    public static TiktokenBackend Load(string path, AddedVocabulary added)
    {
        var content = File.ReadAllBytes(path);
        var bytesById = new Dictionary<int, byte[]>();
        var lineNumber = 0;
        foreach (var line in Encoding.UTF8.GetString(content).Split('\n'))
        {
            lineNumber++;
            var parts = line.TrimEnd('\r').Split(' ');
            if (parts is [""])
            {
                continue;
            }

            if (parts.Length != 2 || !int.TryParse(parts[1], out var rank) || !TryBase64(parts[0], out var bytes))
            {
                throw new LoraException($"{path}: line {lineNumber}: expected \"<base64 token> <rank>\"");
            }

            bytesById[rank] = bytes;
        }

        try
        {
            using var stream = new MemoryStream(content, writable: false);
            var preTokenizer = new CodePointPreTokenizer(new CodePointRegex(new Regex(Llama3Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant)));
            return new TiktokenBackend(TiktokenTokenizer.Create(stream, preTokenizer, normalizer: null), added, bytesById);
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or ArgumentException)
        {
            throw new LoraException($"{path}: not a readable tiktoken file: {e.Message}", e);
        }
    }

    public override void Encode(string segment, bool atStart, List<int> ids) => ids.AddRange(_tiktoken.EncodeToIds(segment));

    // Bytes of all tokens are joined before UTF-8 decoding, so characters split across tokens come out whole.
    public override string Decode(IReadOnlyList<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (_added.ById(id) is { } token)
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(token.Content));
            }
            else if (_bytesById.TryGetValue(id, out var tokenBytes))
            {
                bytes.AddRange(tokenBytes);
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    public override int? TokenToId(string token) => _idByToken.TryGetValue(token, out var id) ? id : null;

    public override string? IdToToken(int id) => _bytesById.TryGetValue(id, out var bytes) ? ByteLevelAlphabet.Encode(bytes) : null;

    public override IEnumerable<int> Ids => _bytesById.Keys;

    private static bool TryBase64(string text, out byte[] bytes)
    {
        bytes = new byte[(text.Length * 3 / 4) + 3];
        if (Convert.TryFromBase64String(text, bytes, out var written))
        {
            bytes = bytes[..written];
            return true;
        }

        return false;
    }

    /// <summary>The regex matches as pieces, like <see cref="RegexPreTokenizer"/>, but on code points as HF / tiktoken
    /// match (<see cref="CodePointRegex"/>). Added tokens are split off before this runs, so none are handled here.</summary>
    private sealed class CodePointPreTokenizer(CodePointRegex regex) : PreTokenizer
    {
        public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
        {
            var pieces = new List<(int Offset, int Length)>();
            if (!string.IsNullOrEmpty(text))
            {
                foreach (var piece in regex.EnumerateMatches(text))
                {
                    pieces.Add(piece);
                }
            }

            return pieces;
        }

        public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) =>
            text.IsEmpty ? [] : PreTokenize(text.ToString());
    }
}
