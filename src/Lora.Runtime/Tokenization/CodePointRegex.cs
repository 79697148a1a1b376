using System.Buffers;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Lora.Tokenization;

/// <summary>
/// A tokenizer.json regex matched with code-point semantics. HF <c>tokenizers</c> runs its patterns (Onig / Rust
/// regex) on UTF-8, one code point at a time; .NET's engine sees UTF-16 code units, so a character outside the Basic
/// Multilingual Plane is two surrogates of category Cs: "𝒜" (U+1D49C, Lu) is not <c>\p{L}</c>, and in
/// <c>[^\r\n\p{L}\p{N}]?\p{L}+</c> an emoji cannot be the one-character prefix of "🙂a".
/// </summary>
/// <remarks>
/// <para>How: when the text holds a surrogate pair, each pair is replaced by one BMP placeholder character of the
/// same Unicode general category (<see cref="CharUnicodeInfo.GetUnicodeCategory(int)"/>), the regex runs on that
/// string, and match bounds are mapped back to the original, so callers cut the original text and the byte-level
/// step encodes the real characters. The patterns tokenizers use (<c>\p{L}</c>, <c>\p{N}</c>, <c>\s</c>, <c>\w</c>,
/// negated classes, <c>.</c>) only ask for a character's category, which the placeholder has, and one code point is
/// now one unit for quantifiers like <c>\p{N}{1,3}</c> too.</para>
/// <para>Why not rewrite the pattern (<c>\p{L}</c> → <c>(?:\p{L}|\uD835[\uDC00-\uDC54]|…)</c>)? It needs a parser for
/// the regex language, hundreds of surrogate ranges per class, and it turns the set loops .NET vectorises
/// (<c>\p{L}+</c>) into alternation loops that slow every text down, whereas this costs nothing unless astral
/// characters are present: BMP-only text (one vectorised surrogate scan) goes to the regex unchanged, with no
/// allocation.</para>
/// <para>Placeholders are searched from U+A000 up (Yi, Vai, Cyrillic Extended-B…), never ASCII, never a case
/// variant of ASCII, not ZWJ/ZWNJ (which <c>\b</c> treats as word characters). A pattern that names a placeholder or a
/// surrogate itself (a literal emoji in a String pattern, say) keeps code-unit matching, which is already right for
/// a literal made of whole code points.</para>
/// </remarks>
internal sealed class CodePointRegex
{
    private static readonly char[] Placeholders = BuildPlaceholders();

    // Vectorised and allocation-free (MemoryExtensions.IndexOfAnyInRange measured 96 bytes a call here).
    private static readonly SearchValues<char> HighSurrogates =
        SearchValues.Create(Enumerable.Range(0xD800, 0x400).Select(c => (char)c).ToArray());

    private readonly bool _mapsAstral;

    public CodePointRegex(Regex regex)
    {
        Regex = regex;
        var pattern = regex.ToString();
        _mapsAstral = pattern.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0
            && pattern.AsSpan().IndexOfAny(Placeholders) < 0
            && !Regex.IsMatch(pattern, @"\\u[dD][89a-fA-F]", RegexOptions.CultureInvariant);
    }

    public Regex Regex { get; }

    /// <summary>Non-overlapping matches, leftmost first, as (index, length) in <paramref name="text"/>'s UTF-16
    /// units; bounds never fall inside a surrogate pair.</summary>
    public MatchEnumerator EnumerateMatches(string text)
    {
        if (!_mapsAstral || !HasSurrogatePair(text))
        {
            return new MatchEnumerator(Regex.EnumerateMatches(text), null);
        }

        var mapped = new char[text.Length];
        var offsets = new int[text.Length + 1]; // offsets[k]: where mapped unit k starts in text
        var n = 0;
        for (var i = 0; i < text.Length; n++)
        {
            offsets[n] = i;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                mapped[n] = Placeholders[(int)category];
                i += 2;
            }
            else
            {
                mapped[n] = text[i]; // lone surrogates stay Cs, as before
                i++;
            }
        }

        offsets[n] = text.Length;
        return new MatchEnumerator(Regex.EnumerateMatches(mapped.AsSpan(0, n)), offsets);
    }

    /// <summary>HF's <c>Replace</c> normaliser with a regex: every match becomes <paramref name="content"/>, taken
    /// literally.</summary>
    public string Replace(string text, string content)
    {
        var result = new System.Text.StringBuilder(text.Length);
        var last = 0;
        var any = false;
        foreach (var (index, length) in EnumerateMatches(text))
        {
            result.Append(text, last, index - last).Append(content);
            last = index + length;
            any = true;
        }

        return any ? result.Append(text, last, text.Length - last).ToString() : text;
    }

    private static bool HasSurrogatePair(string text)
    {
        var i = text.AsSpan().IndexOfAny(HighSurrogates);
        while (i >= 0 && i + 1 < text.Length)
        {
            if (char.IsLowSurrogate(text[i + 1]))
            {
                return true;
            }

            var next = text.AsSpan(i + 1).IndexOfAny(HighSurrogates);
            i = next < 0 ? -1 : i + 1 + next;
        }

        return false;
    }

    // One BMP character per general category. Astral code points are never Cc, Cs or Z*, but every slot is filled.
    private static char[] BuildPlaceholders()
    {
        var categories = Enum.GetValues<UnicodeCategory>();
        var map = new char[categories.Length];
        var found = new bool[categories.Length];
        var remaining = categories.Length;
        foreach (var (from, to) in new[] { (0xA000, 0xFFFF), (0x0100, 0x9FFF), (0x0080, 0x00FF) })
        {
            for (var c = from; c <= to && remaining > 0; c++)
            {
                var ch = (char)c;
                var category = (int)char.GetUnicodeCategory(ch);
                if (found[category] || ch is '\u200C' or '\u200D'
                    || char.ToUpperInvariant(ch) < 0x80 || char.ToLowerInvariant(ch) < 0x80)
                {
                    continue;
                }

                map[category] = ch;
                found[category] = true;
                remaining--;
            }
        }

        return map;
    }

    /// <summary>A <c>foreach</c>-able sequence of (index, length) matches; a struct, so the BMP path allocates
    /// nothing.</summary>
    public ref struct MatchEnumerator
    {
        private readonly int[]? _offsets;
        private Regex.ValueMatchEnumerator _inner;

        internal MatchEnumerator(Regex.ValueMatchEnumerator inner, int[]? offsets)
        {
            _inner = inner;
            _offsets = offsets;
        }

        public (int Index, int Length) Current { get; private set; }

        public readonly MatchEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            if (!_inner.MoveNext())
            {
                return false;
            }

            var m = _inner.Current;
            if (_offsets is null)
            {
                Current = (m.Index, m.Length);
            }
            else
            {
                var start = _offsets[m.Index];
                Current = (start, _offsets[m.Index + m.Length] - start);
            }

            return true;
        }
    }
}
