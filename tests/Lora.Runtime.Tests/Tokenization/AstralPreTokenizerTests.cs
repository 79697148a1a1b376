using System.Text.Json;
using System.Text.RegularExpressions;
using Lora.Tests;
using Lora.Tokenization;

namespace Lora.Runtime.Tests.Tokenization;

/// <summary>
/// Characters outside the Basic Multilingual Plane (two UTF-16 units) must pre-tokenize as HF <c>tokenizers</c> does,
/// which runs the Split regex on code points (<see cref="CodePointRegex"/>).
/// </summary>
/// <remarks>
/// <para>Expected values are derived from HF's algorithm, not from this code. Both fixtures pre-tokenize with
/// <c>Split(Isolated)</c> on <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|N| ?[^\s\p{L}\p{N}]+[\r\n]*|
/// \s*[\r\n]+|\s+(?!\S)|\s+</c> (N is <c>\p{N}{1,3}</c> in Llama 3, <c>\p{N}</c> in Qwen3), then ByteLevel without its
/// regex; the model is byte-level BPE (Llama 3 with <c>ignore_merges</c>). Alternatives are tried in order at each
/// position, on code points:</para>
/// <list type="bullet">
/// <item>"🙂a": 🙂 (U+1F642, So) is one code point outside L/N/\r\n, so it is the optional prefix of
/// <c>[^\r\n\p{L}\p{N}]?\p{L}+</c> and "a" the letters: one piece "🙂a". (On UTF-16 units the prefix would be the
/// high surrogate alone, the low one is no letter, and ` ?[^\s\p{L}\p{N}]+` takes "🙂": pieces "🙂", "a".)</item>
/// <item>"a🙂b": at 0 the prefix cannot be "a" (a letter), <c>\p{L}+</c> takes "a" and stops at 🙂; at 🙂 as above:
/// "a", "🙂b".</item>
/// <item>"𝒜bc": U+1D49C MATHEMATICAL SCRIPT CAPITAL A is Lu, so <c>\p{L}+</c> takes all three: "𝒜bc".</item>
/// <item>"𠀀" (U+20000, Lo) is one piece either way; "𠀀a" is one letter run "𠀀a".</item>
/// <item>"𝟏𝟐𝟑𝟒" (U+1D7CF–U+1D7D2 MATHEMATICAL BOLD DIGIT ONE–FOUR, Nd): Llama 3's <c>\p{N}{1,3}</c> gives "𝟏𝟐𝟑", "𝟒";
/// Qwen3's <c>\p{N}</c> gives one piece per digit.</item>
/// <item>"x 🙂🚀 y": " 🙂🚀" is ` ?[^\s\p{L}\p{N}]+`, as on UTF-16 units (the fixtures' emoji case).</item>
/// <item>" 𝟏a": the space cannot start a letter run (𝟏 is no letter) nor ` ?[^\s\p{L}\p{N}]+` (𝟏 is N), and
/// <c>\s+(?!\S)</c> fails before 𝟏, so <c>\s+</c> takes " "; then "𝟏" (N), "a". (On UTF-16 units " 𝟏" is one
/// ` ?[^\s\p{L}\p{N}]+` piece, which Llama 3 merges into "ĠðĿ" 82350, Qwen3 81250.)</item>
/// <item>"a𝒜's": "a𝒜" is one letter run, then the contraction "'s" ("'"+"s": Llama 3 596, Qwen3 594). (On UTF-16 units
/// ` ?[^\s\p{L}\p{N}]+` takes "𝒜'" and leaves "s": ' 6, s 82.)</item>
/// <item>" 𠀀's": " 𠀀" (space prefix + letter), "'s". (Code units: " 𠀀'", "s".)</item>
/// </list>
/// <para>Ids: each piece is UTF-8 encoded and each byte written as its GPT-2 byte-level character (F0 9F 99 82 →
/// "ðŁĻĤ", F0 9D 92 9C → "ðĿĴľ", F0 A0 80 80 → "ðłĢĢ", F0 9D 9F 8F → "ðĿŁı", 20 → "Ġ"). None of the whole pieces is
/// a vocabulary entry, so <c>ignore_merges</c> does not apply and HF's BPE merge loop runs: merge the adjacent pair
/// with the lowest rank in <c>model.merges</c> (leftmost on ties) until no pair has a merge. Llama 3: "ð"+"Ł"
/// (rank 25097) and "Ļ"+"Ĥ" (50860) and no "ðŁ"+"ĻĤ" → ðŁ 9468, ĻĤ 19044; "ð"+"Ŀ" (144138) → 57352, then Ĵ 240,
/// ľ 250, "b"+"c" (24032) → 9081; "ł"+"Ģ" (159773) leaves ð 172, łĢ 64319, Ģ 222; the digit Ł 253 ı 237 Ĳ 238 ĳ 239
/// Ĵ 240; " 🙂🚀": "ĠðŁ"+"ĻĤ" (75400) → 28584, then ðŁ 9468, ļ 248, Ģ 222. Qwen3: "ðŁ"+"ĻĤ" (144824) → 145080; "ðĿĴ"+"ľ" (146972) → 147228; "b"+"c" (8648) → 8904; "ł"+"Ģ"
/// (62963) → ð 172, łĢ 63219, Ģ 222; "ð"+"Ŀ" (55996) → 56252; "ĠðŁ"+"ĻĤ" (27228) → 27484, "ðŁļ"+"Ģ" (145580) →
/// 145836. " 𠀀" in Llama 3: "Ġ"+"ð" (251501) → 109697, Qwen3 has no such merge (Ġ 220, ð 172). The numbers were worked out with tests/fixtures/tokenizers/astral_reference.py, a standalone
/// implementation of exactly these steps (Python <c>regex</c> on code points, the GPT-2 byte map, the merge loop)
/// that also reproduces every llama3/qwen3 row of expected.json.</para>
/// </remarks>
public sealed class AstralPreTokenizerTests
{
    private static readonly Dictionary<string, Lazy<HfPreTokenizer>> PreTokenizers = TokenizerFixtures.Names.ToDictionary(
        n => n,
        n => new Lazy<HfPreTokenizer>(() =>
        {
            var path = Path.Combine(TokenizerFixtures.Directory(n), "tokenizer.json");
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return HfPreTokenizer.Parse(new JsonFields(path, "", doc.RootElement.GetProperty("pre_tokenizer").Clone()));
        }));

    public static TheoryData<string, string, string[], int[]> Cases() => new()
    {
        { "llama3", "🙂a", ["🙂a"], [9468, 19044, 64] },
        { "qwen3", "🙂a", ["🙂a"], [145080, 64] },
        { "llama3", "a🙂b", ["a", "🙂b"], [64, 9468, 19044, 65] },
        { "qwen3", "a🙂b", ["a", "🙂b"], [64, 145080, 65] },
        { "llama3", "𝒜bc", ["𝒜bc"], [57352, 240, 250, 9081] },
        { "qwen3", "𝒜bc", ["𝒜bc"], [147228, 8904] },
        { "llama3", "𠀀", ["𠀀"], [172, 64319, 222] },
        { "qwen3", "𠀀", ["𠀀"], [172, 63219, 222] },
        { "llama3", "𠀀a", ["𠀀a"], [172, 64319, 222, 64] },
        { "qwen3", "𠀀a", ["𠀀a"], [172, 63219, 222, 64] },
        { "llama3", "𝟏𝟐𝟑𝟒", ["𝟏𝟐𝟑", "𝟒"], [57352, 253, 237, 57352, 253, 238, 57352, 253, 239, 57352, 253, 240] },
        { "qwen3", "𝟏𝟐𝟑𝟒", ["𝟏", "𝟐", "𝟑", "𝟒"], [56252, 253, 237, 56252, 253, 238, 56252, 253, 239, 56252, 253, 240] },
        { "llama3", "x 🙂🚀 y", ["x", " 🙂🚀", " y"], [87, 28584, 9468, 248, 222, 379] },
        { "qwen3", "x 🙂🚀 y", ["x", " 🙂🚀", " y"], [87, 27484, 145836, 379] },
        { "llama3", " 𝟏a", [" ", "𝟏", "a"], [220, 57352, 253, 237, 64] },
        { "qwen3", " 𝟏a", [" ", "𝟏", "a"], [220, 56252, 253, 237, 64] },
        { "llama3", "a𝒜's", ["a𝒜", "'s"], [64, 57352, 240, 250, 596] },
        { "qwen3", "a𝒜's", ["a𝒜", "'s"], [64, 147228, 594] },
        { "llama3", " 𠀀's", [" 𠀀", "'s"], [109697, 64319, 222, 596] },
        { "qwen3", " 𠀀's", [" 𠀀", "'s"], [220, 172, 63219, 222, 594] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Split_regex_cuts_words_on_code_points(string name, string text, string[] pieces, int[] ids)
    {
        _ = ids;
        var actual = PreTokenizers[name].Value.Split(text, atStart: true).Select(p => p.Text).ToArray();
        Assert.Equal(pieces, actual);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Astral_text_encodes_to_hf_ids(string name, string text, string[] pieces, int[] ids)
    {
        _ = pieces;
        var tokenizer = LoadedTokenizers.Get(name);
        Assert.Equal(ids, tokenizer.Encode(text, addSpecialTokens: false));
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void Astral_letters_and_digits_are_their_category()
    {
        var letters = new CodePointRegex(new Regex(@"\p{L}+", RegexOptions.CultureInvariant));
        Assert.Equal([(0, 7)], Matches(letters, "𝒜b𠀀𝒜")); // 2 + 1 + 2 + 2 units
        var digits = new CodePointRegex(new Regex(@"\p{N}{1,3}", RegexOptions.CultureInvariant));
        Assert.Equal([(0, 6), (6, 3)], Matches(digits, "𝟏𝟐𝟑𝟒5"));
        var any = new CodePointRegex(new Regex(".", RegexOptions.CultureInvariant));
        Assert.Equal("___", any.Replace("🙂a🚀", "_"));
        var symbols = new CodePointRegex(new Regex(@"\p{So}", RegexOptions.CultureInvariant));
        Assert.Equal("<>a<>", symbols.Replace("🙂a🚀", "<>"));
    }

    [Fact]
    public void Lone_surrogates_and_literal_patterns_keep_code_units()
    {
        var letters = new CodePointRegex(new Regex(@"[^\p{L}]", RegexOptions.CultureInvariant));
        Assert.Equal([(0, 1), (2, 1)], Matches(letters, "\uD835a\uDC9C")); // unpaired: each is Cs
        var literal = new CodePointRegex(new Regex(Regex.Escape("🙂"), RegexOptions.CultureInvariant));
        Assert.Equal([(1, 2)], Matches(literal, "a🙂🚀"));
    }

    /// <summary>BMP-only text goes to the regex unchanged: same matches as the plain regex, and nothing allocated.</summary>
    [Fact]
    public void Bmp_text_matches_like_the_plain_regex_without_allocating()
    {
        var regex = new Regex(TiktokenBackend.Llama3Pattern, RegexOptions.CultureInvariant);
        var wrapped = new CodePointRegex(regex);
        foreach (var row in TokenizerFixtures.Expected("llama3").Where(r => !r.Text.Any(char.IsSurrogate)))
        {
            var plain = regex.Matches(row.Text).Select(m => (m.Index, m.Length)).ToArray();
            Assert.Equal(plain, Matches(wrapped, row.Text));
        }

        const string text = "Hello, world: 你好 1234567 naïve\r\n  done";
        var count = 0;
        for (var i = 0; i < 3; i++)
        {
            count = Count(wrapped, text); // warms the regex's runner and the JIT
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        var again = Count(wrapped, text);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(count, again);
        Assert.Equal(0, allocated);
    }

    private static int Count(CodePointRegex regex, string text)
    {
        var n = 0;
        foreach (var _ in regex.EnumerateMatches(text))
        {
            n++;
        }

        return n;
    }

    private static (int, int)[] Matches(CodePointRegex regex, string text)
    {
        var result = new List<(int, int)>();
        foreach (var m in regex.EnumerateMatches(text))
        {
            result.Add(m);
        }

        return [.. result];
    }
}
