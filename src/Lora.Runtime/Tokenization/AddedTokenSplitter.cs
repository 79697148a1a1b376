namespace Lora.Tokenization;

/// <summary>
/// Cuts text at added tokens the way HF <c>tokenizers</c>' AddedVocabulary does: leftmost-longest matches, a
/// <c>single_word</c> match inside a word is dropped, <c>lstrip</c>/<c>rstrip</c> swallow the neighbouring
/// whitespace. Microsoft.ML.Tokenizers matches special tokens through its pre-tokenizer regex, after
/// normalisation, which would put Llama's "▁" prefix in the wrong place; hence this glue.
/// </summary>
internal sealed class AddedTokenSplitter
{
    private readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenSplitter(IEnumerable<(string Pattern, AddedToken Token)> patterns)
    {
        _byFirstChar = patterns
            .Where(p => p.Pattern.Length > 0)
            .GroupBy(p => p.Pattern[0])
            .ToDictionary(
                g => g.Key,
                g => g.OrderByDescending(p => p.Pattern.Length).Select(p => p.Token with { Content = p.Pattern }).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Splits <paramref name="text"/> into plain segments (Token null) and added-token matches.</summary>
    public List<(string Text, int Offset, AddedToken? Token)> Split(string text, int baseOffset = 0)
    {
        var result = new List<(string, int, AddedToken?)>();
        var segmentStart = 0;
        var i = 0;
        while (i < text.Length)
        {
            var match = LongestMatchAt(text, i);
            if (match is null)
            {
                i++;
                continue;
            }

            var start = i;
            var stop = i + match.Content.Length;
            if (match.SingleWord && !IsSingleWord(text, start, stop))
            {
                i = stop;
                continue;
            }

            if (match.LStrip)
            {
                while (start > segmentStart && char.IsWhiteSpace(text[start - 1]))
                {
                    start--;
                }
            }

            if (match.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                {
                    stop++;
                }
            }

            if (segmentStart < start)
            {
                result.Add((text[segmentStart..start], baseOffset + segmentStart, null));
            }

            result.Add((text[start..stop], baseOffset + start, match));
            segmentStart = i = stop;
        }

        if (segmentStart < text.Length)
        {
            result.Add((text[segmentStart..], baseOffset + segmentStart, null));
        }

        return result;
    }

    private AddedToken? LongestMatchAt(string text, int i)
    {
        if (!_byFirstChar.TryGetValue(text[i], out var candidates))
        {
            return null;
        }

        foreach (var candidate in candidates)
        {
            if (text.AsSpan(i).StartsWith(candidate.Content, StringComparison.Ordinal))
            {
                return candidate;
            }
        }

        return null;
    }

    private static bool IsSingleWord(string text, int start, int stop) =>
        (start == 0 || !IsWordChar(text[start - 1])) && (stop == text.Length || !IsWordChar(text[stop]));

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
}
