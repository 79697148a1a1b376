using System.Text.RegularExpressions;

namespace Lora.Tokenization;

/// <summary>
/// tokenizer.json's <c>pre_tokenizer</c>: cuts a normalised segment into the pieces the model encodes one by one.
/// Microsoft.ML.Tokenizers' <see cref="Microsoft.ML.Tokenizers.RegexPreTokenizer"/> only returns regex matches,
/// whereas HF's Split keeps the text between matches too and has five delimiter behaviours, and Metaspace/ByteLevel
/// edit the pieces; so the HF semantics are reproduced here.
/// </summary>
internal sealed class HfPreTokenizer
{
    // GPT-2's pattern, which HF's ByteLevel pre-tokenizer applies when use_regex is true.
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly Func<List<Piece>, List<Piece>> _apply;

    private HfPreTokenizer(Func<List<Piece>, List<Piece>> apply, bool byteLevel)
    {
        _apply = apply;
        ByteLevel = byteLevel;
    }

    /// <summary>A piece of text and whether it starts the original input (Metaspace's "first" scheme needs it).</summary>
    internal readonly record struct Piece(string Text, bool AtStart);

    /// <summary>Whether a ByteLevel step is present, so the model must see UTF-8 bytes as GPT-2 characters.</summary>
    public bool ByteLevel { get; }

    public List<Piece> Split(string segment, bool atStart) =>
        segment.Length == 0 ? [] : _apply([new Piece(segment, atStart)]).Where(p => p.Text.Length > 0).ToList();

    public static HfPreTokenizer Parse(JsonFields? node)
    {
        if (node is null)
        {
            return new HfPreTokenizer(p => p, byteLevel: false);
        }

        var byteLevel = false;
        var apply = Build(node.Value, ref byteLevel);
        return new HfPreTokenizer(apply, byteLevel);
    }

    private static Func<List<Piece>, List<Piece>> Build(JsonFields node, ref bool byteLevel)
    {
        var type = node.String("type");
        switch (type)
        {
            case "Sequence":
                var steps = new List<Func<List<Piece>, List<Piece>>>();
                foreach (var child in node.Child("pretokenizers").Items())
                {
                    steps.Add(Build(child, ref byteLevel));
                }

                return pieces => steps.Aggregate(pieces, (acc, step) => step(acc));

            case "Split":
                var pattern = HfNormalizer.Pattern.Parse(node.Child("pattern"));
                var regex = pattern.Regex ?? new CodePointRegex(new Regex(Regex.Escape(pattern.Literal!), RegexOptions.CultureInvariant));
                var behavior = node.String("behavior");
                var invert = node.Bool("invert", false);
                if (behavior is not ("Isolated" or "Removed" or "MergedWithPrevious" or "MergedWithNext" or "Contiguous"))
                {
                    throw node.Child("behavior").Error($"split behavior \"{behavior}\" is not supported");
                }

                return pieces => EachPiece(pieces, p => SplitByRegex(p, regex, behavior, invert));

            case "ByteLevel":
                byteLevel = true;
                var addPrefixSpace = node.Bool("add_prefix_space", false);
                var useRegex = node.Bool("use_regex", true);
                var gpt2 = useRegex ? new CodePointRegex(new Regex(Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant)) : null;
                return pieces => EachPiece(pieces, p =>
                {
                    var text = addPrefixSpace && !p.Text.StartsWith(' ') ? " " + p.Text : p.Text;
                    var piece = p with { Text = text };
                    return gpt2 is null ? [piece] : SplitByRegex(piece, gpt2, "Isolated", invert: false);
                });

            case "Metaspace":
                var replacement = node.String("replacement");
                var scheme = node.OptionalString("prepend_scheme")
                    ?? (node.Bool("add_prefix_space", true) ? "always" : "never");
                var split = node.Bool("split", true);
                if (replacement.Length != 1 || scheme is not ("always" or "first" or "never"))
                {
                    throw node.Error("Metaspace needs a one-character replacement and prepend_scheme always/first/never");
                }

                return pieces => EachPiece(pieces, p => Metaspace(p, replacement[0], scheme, split));

            case "Digits":
                var individual = node.Bool("individual_digits", false);
                var digits = new CodePointRegex(new Regex(individual ? @"\p{Nd}" : @"\p{Nd}+", RegexOptions.CultureInvariant));
                return pieces => EachPiece(pieces, p => SplitByRegex(p, digits, "Isolated", invert: false));

            case "Whitespace":
                var words = new CodePointRegex(new Regex(@"\w+|[^\w\s]+", RegexOptions.CultureInvariant));
                return pieces => EachPiece(pieces, p => SplitByRegex(p, words, "Removed", invert: true));

            case "WhitespaceSplit":
                var spaces = new CodePointRegex(new Regex(@"\s+", RegexOptions.CultureInvariant));
                return pieces => EachPiece(pieces, p => SplitByRegex(p, spaces, "Removed", invert: false));

            default:
                throw node.Child("type").Error($"pre_tokenizer type \"{type}\" is not supported");
        }
    }

    private static List<Piece> EachPiece(List<Piece> pieces, Func<Piece, List<Piece>> split)
    {
        var result = new List<Piece>(pieces.Count);
        foreach (var piece in pieces)
        {
            result.AddRange(split(piece));
        }

        return result;
    }

    /// <summary>HF's <c>NormalizedString::split</c>: matches are delimiters (the gaps, when inverted), and the
    /// behaviour says what becomes of them. Matching is on code points (<see cref="CodePointRegex"/>), as in HF.</summary>
    private static List<Piece> SplitByRegex(Piece piece, CodePointRegex regex, string behavior, bool invert)
    {
        var text = piece.Text;
        var spans = new List<(int Start, int End, bool Delimiter)>();
        var last = 0;
        foreach (var (index, length) in regex.EnumerateMatches(text))
        {
            if (length == 0)
            {
                continue;
            }

            if (index > last)
            {
                spans.Add((last, index, invert));
            }

            spans.Add((index, index + length, !invert));
            last = index + length;
        }

        if (last < text.Length)
        {
            spans.Add((last, text.Length, invert));
        }

        var cuts = new List<(int Start, int End)>();
        var pendingNext = -1; // start of a delimiter waiting for the next piece (MergedWithNext)
        var previousDelimiter = false;
        foreach (var (start, end, delimiter) in spans)
        {
            var joinPrevious = cuts.Count > 0 && cuts[^1].End == start
                && ((behavior == "MergedWithPrevious" && delimiter) || (behavior == "Contiguous" && delimiter && previousDelimiter));
            if (behavior == "Removed" && delimiter)
            {
                // dropped
            }
            else if (joinPrevious)
            {
                cuts[^1] = (cuts[^1].Start, end);
            }
            else if (behavior == "MergedWithNext" && delimiter)
            {
                pendingNext = pendingNext < 0 ? start : pendingNext;
            }
            else
            {
                cuts.Add((pendingNext >= 0 ? pendingNext : start, end));
                pendingNext = -1;
            }

            previousDelimiter = delimiter;
        }

        if (pendingNext >= 0)
        {
            cuts.Add((pendingNext, text.Length));
        }

        return cuts.Select(c => new Piece(text[c.Start..c.End], piece.AtStart && c.Start == 0)).ToList();
    }

    private static List<Piece> Metaspace(Piece piece, char replacement, string scheme, bool split)
    {
        var text = piece.Text.Replace(' ', replacement);
        if (!text.StartsWith(replacement) && (scheme == "always" || (scheme == "first" && piece.AtStart)))
        {
            text = replacement + text;
        }

        if (!split)
        {
            return [piece with { Text = text }];
        }

        // Split before each replacement character (HF: MergedWithNext on the replacement).
        var result = new List<Piece>();
        var start = 0;
        for (var i = 1; i < text.Length; i++)
        {
            if (text[i] == replacement)
            {
                result.Add(new Piece(text[start..i], piece.AtStart && start == 0));
                start = i;
            }
        }

        result.Add(new Piece(text[start..], piece.AtStart && start == 0));
        return result;
    }
}
