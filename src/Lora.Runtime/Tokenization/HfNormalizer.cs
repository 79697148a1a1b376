using System.Text;
using System.Text.RegularExpressions;

namespace Lora.Tokenization;

/// <summary>
/// tokenizer.json's <c>normalizer</c> as a string function. Microsoft.ML.Tokenizers has no counterpart for HF's
/// composable normalisers (Prepend, Replace, Sequence, NFC...), and they are plain string edits, so they live here.
/// </summary>
internal sealed class HfNormalizer
{
    private readonly Func<string, string> _apply;

    private HfNormalizer(Func<string, string> apply) => _apply = apply;

    /// <summary>The identity, for a tokenizer.json whose normalizer is null.</summary>
    public static HfNormalizer None { get; } = new(s => s);

    public string Normalize(string text) => _apply(text);

    public static HfNormalizer Parse(JsonFields? node) => node is null ? None : new HfNormalizer(Build(node.Value));

    private static Func<string, string> Build(JsonFields node)
    {
        var type = node.String("type");
        switch (type)
        {
            case "Sequence":
                var steps = node.Child("normalizers").Items().Select(Build).ToArray();
                return s => steps.Aggregate(s, (acc, step) => step(acc));
            case "NFC":
                return s => s.Normalize(NormalizationForm.FormC);
            case "NFD":
                return s => s.Normalize(NormalizationForm.FormD);
            case "NFKC":
                return s => s.Normalize(NormalizationForm.FormKC);
            case "NFKD":
                return s => s.Normalize(NormalizationForm.FormKD);
            case "Lowercase":
                return s => s.ToLowerInvariant();
            case "Prepend":
                var prefix = node.String("prepend");
                return s => s.Length == 0 ? s : prefix + s; // HF leaves an empty string empty
            case "Replace":
                var replace = Pattern.Parse(node.Child("pattern"));
                var content = node.String("content");
                return s => replace.Replace(s, content);
            case "Strip":
                var left = node.Bool("strip_left", true);
                var right = node.Bool("strip_right", true);
                return s => left && right ? s.Trim() : left ? s.TrimStart() : right ? s.TrimEnd() : s;
            default:
                throw node.Child("type").Error($"normalizer type \"{type}\" is not supported");
        }
    }

    /// <summary>HF's <c>{"String": "..."}</c> / <c>{"Regex": "..."}</c> pattern object.</summary>
    internal sealed class Pattern(string? literal, CodePointRegex? regex)
    {
        /// <summary>The regex, matched on code points as HF does (<see cref="CodePointRegex"/>).</summary>
        public CodePointRegex? Regex { get; } = regex;

        public string? Literal { get; } = literal;

        public static Pattern Parse(JsonFields node)
        {
            if (node.OptionalString("String") is { } literal)
            {
                return new Pattern(literal, null);
            }

            if (node.OptionalString("Regex") is { } regex)
            {
                return new Pattern(null, new CodePointRegex(CompileRegex(node.Child("Regex"), regex)));
            }

            throw node.Error("expected {\"String\": ...} or {\"Regex\": ...}");
        }

        public string Replace(string text, string replacement) =>
            Literal is not null
                ? (Literal.Length == 0 ? text : text.Replace(Literal, replacement, StringComparison.Ordinal))
                : Regex!.Replace(text, replacement);

        /// <summary>Compiles an HF (Oniguruma) pattern with .NET's engine; the syntax the Llama/Qwen/GPT patterns
        /// use is common to both.</summary>
        internal static Regex CompileRegex(JsonFields at, string pattern)
        {
            try
            {
                return new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
            }
            catch (ArgumentException e)
            {
                throw at.Error($"regex is not supported by .NET: {e.Message}");
            }
        }
    }
}
