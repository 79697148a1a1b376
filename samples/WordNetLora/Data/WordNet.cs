using System.Globalization;
using System.Text.RegularExpressions;

namespace WordNetLora.Data;

/// <summary>A pointer of a synset (<c>wndb(5WN)</c>): symbol (<c>!</c> antonym, <c>@</c> hypernym, …), target synset,
/// and for lexical pointers the 1-based source and target word numbers (0 = the whole synset).</summary>
public sealed record WordNetPointer(string Symbol, string TargetOffset, char TargetPos, int SourceWord, int TargetWord);

/// <summary>One line of a <c>data.{noun,verb,adj,adv}</c> file: the synset's words (lemmas as written, adjective
/// markers such as <c>(a)</c> removed, underscores as spaces), its pointers and its gloss split into the definition
/// and the quoted example sentences.</summary>
public sealed record Synset(string Offset, char Pos, IReadOnlyList<string> Words, IReadOnlyList<WordNetPointer> Pointers,
    string Definition, IReadOnlyList<string> Examples)
{
    /// <summary>The synset's key in <see cref="WordNet.Synsets"/>: its offset and part of speech.</summary>
    public string Key => WordNet.KeyOf(Offset, Pos);
}

/// <summary>
/// Reads WordNet 3.0's database files as Debian's <c>wordnet-base</c> installs them (<c>/usr/share/wordnet</c>):
/// <c>data.*</c> (synsets), <c>index.noun</c> (senses of a lemma, most frequent first) and <c>cntlist.rev</c> (how
/// often each sense is tagged in the SemCor corpus, summed per lemma as a word-frequency measure). Lines of the
/// licence header (they start with two spaces) are skipped. Formats: Princeton's <c>wndb(5WN)</c> and <c>cntlist(5WN)</c>.
/// </summary>
public sealed partial class WordNet
{
    private static readonly string[] DataFiles = ["noun", "verb", "adj", "adv"];

    private WordNet(Dictionary<string, Synset> synsets, Dictionary<string, IReadOnlyList<string>> nounSenses, Dictionary<string, int> frequency)
    {
        Synsets = synsets;
        NounSenses = nounSenses;
        Frequency = frequency;
    }

    /// <summary>Every synset, by <see cref="KeyOf"/>.</summary>
    public IReadOnlyDictionary<string, Synset> Synsets { get; }

    /// <summary>For each noun lemma (lower case, spaces as underscores, as in index.noun): its synset offsets, most
    /// frequent sense first.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> NounSenses { get; }

    /// <summary>SemCor tag counts summed over a lemma's senses of one part of speech, by <c>lemma%n</c>
    /// (<c>n</c>, <c>v</c>, <c>a</c> (satellites included), <c>r</c>).</summary>
    public IReadOnlyDictionary<string, int> Frequency { get; }

    /// <summary>How often <paramref name="lemma"/> is tagged as a <paramref name="pos"/> in SemCor (0 when never).</summary>
    public int FrequencyOf(string lemma, char pos) => Frequency.GetValueOrDefault(FrequencyKey(lemma.ToLowerInvariant().Replace(' ', '_'), pos));

    private static string FrequencyKey(string lemma, char pos) => $"{lemma}%{(pos == 's' ? 'a' : pos)}";

    public static string KeyOf(string offset, char pos) => $"{offset}{(pos == 's' ? 'a' : pos)}";

    /// <summary>Loads the files of <paramref name="directory"/>; a missing file is a <see cref="Lora.LoraException"/>
    /// naming it (and the Debian package that has it).</summary>
    public static WordNet Load(string directory)
    {
        var synsets = new Dictionary<string, Synset>(StringComparer.Ordinal);
        foreach (var name in DataFiles)
        {
            foreach (var synset in ReadData(Require(directory, "data." + name)))
                synsets[synset.Key] = synset;
        }

        var senses = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (lemma, offsets) in ReadIndex(Require(directory, "index.noun")))
            senses[lemma] = offsets;
        var frequency = ReadFrequencies(Require(directory, "cntlist.rev"));
        return new WordNet(synsets, senses, frequency);
    }

    /// <summary>Parses the synset lines of a data file.</summary>
    public static IEnumerable<Synset> ReadData(string path)
    {
        var number = 0;
        foreach (var line in File.ReadLines(path, System.Text.Encoding.Latin1))
        {
            number++;
            if (line.Length == 0 || line.StartsWith("  ", StringComparison.Ordinal))
                continue;
            Synset synset;
            try
            {
                synset = ParseDataLine(line);
            }
            catch (Exception e) when (e is FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
            {
                throw new Lora.LoraException($"{path}:{number}: not a WordNet synset line ({e.Message}).");
            }

            yield return synset;
        }
    }

    /// <summary><c>synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id…] p_cnt [ptr…] [frames…] | gloss</c>.</summary>
    public static Synset ParseDataLine(string line)
    {
        var bar = line.IndexOf(" | ", StringComparison.Ordinal);
        var head = (bar < 0 ? line : line[..bar]).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var gloss = bar < 0 ? string.Empty : line[(bar + 3)..].Trim();
        var pos = head[2][0];
        var wordCount = int.Parse(head[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var words = new List<string>(wordCount);
        var i = 4;
        for (var w = 0; w < wordCount; w++, i += 2)
            words.Add(AdjectiveMarker().Replace(head[i], string.Empty).Replace('_', ' '));
        var pointerCount = int.Parse(head[i++], CultureInfo.InvariantCulture);
        var pointers = new List<WordNetPointer>(pointerCount);
        for (var p = 0; p < pointerCount; p++, i += 4)
        {
            var sourceTarget = head[i + 3];
            pointers.Add(new WordNetPointer(head[i], head[i + 1], head[i + 2][0],
                int.Parse(sourceTarget[..2], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                int.Parse(sourceTarget[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        }

        var (definition, examples) = SplitGloss(gloss);
        return new Synset(head[0], pos, words, pointers, definition, examples);
    }

    /// <summary>A gloss is <c>definition; "example"; "example"</c>: the quoted parts are the examples, the rest
    /// (trailing semicolons removed) the definition.</summary>
    public static (string Definition, IReadOnlyList<string> Examples) SplitGloss(string gloss)
    {
        var examples = Quoted().Matches(gloss).Select(m => m.Groups[1].Value.Trim()).Where(e => e.Length > 0).ToList();
        var definition = Quoted().Replace(gloss, string.Empty);
        definition = Spaces().Replace(definition, " ").Trim().TrimEnd(';', ' ', ',', ':').Trim();
        return (definition, examples);
    }

    /// <summary><c>lemma pos synset_cnt p_cnt [ptr_symbol…] sense_cnt tagsense_cnt synset_offset…</c>.</summary>
    public static IEnumerable<(string Lemma, IReadOnlyList<string> Offsets)> ReadIndex(string path)
    {
        foreach (var line in File.ReadLines(path, System.Text.Encoding.Latin1))
        {
            if (line.Length == 0 || line.StartsWith("  ", StringComparison.Ordinal))
                continue;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var synsetCount = int.Parse(f[2], CultureInfo.InvariantCulture);
            yield return (f[0], f[^synsetCount..]);
        }
    }

    /// <summary><c>sense_key sense_number tag_cnt</c>, where <c>sense_key = lemma%ss_type:…</c> (ss_type 1 noun, 2 verb,
    /// 3 adjective, 4 adverb, 5 adjective satellite); summed per lemma and part of speech.</summary>
    public static Dictionary<string, int> ReadFrequencies(string path)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path, System.Text.Encoding.Latin1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 3)
                continue;
            var percent = f[0].IndexOf('%', StringComparison.Ordinal);
            var pos = f[0][percent + 1] switch { '1' => 'n', '2' => 'v', '3' or '5' => 'a', '4' => 'r', var other => throw new FormatException($"sense key {f[0]}: unknown ss_type {other}") };
            var key = FrequencyKey(f[0][..percent], pos);
            counts[key] = counts.GetValueOrDefault(key) + int.Parse(f[2], CultureInfo.InvariantCulture);
        }

        return counts;
    }

    /// <summary>WordNet's licence as its files state it (the header of <c>data.noun</c>), with a line saying where
    /// it comes from: the notice that must accompany every copy of (part of) the database.</summary>
    public static string LicenseText(string directory)
    {
        var lines = File.ReadLines(Require(directory, "data.noun"), System.Text.Encoding.Latin1)
            .TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal))
            .Select(l => LicenseLine().Replace(l, string.Empty).TrimEnd());
        return "The WordNet-derived files here (corpus.txt, train.json, heldout.json) are made from WordNet 3.0\n" +
            "(Princeton University; Debian package wordnet-base), under this licence:\n\n" + string.Join("\n", lines).Trim() + "\n";
    }

    private static string Require(string directory, string name)
    {
        var path = Path.Combine(directory, name);
        if (!File.Exists(path))
            throw new Lora.LoraException($"{path}: file not found (WordNet 3.0's database; on Debian: apt-get install wordnet-base).");
        return path;
    }

    [GeneratedRegex(@"^ +\d+ ?")]
    private static partial Regex LicenseLine();

    [GeneratedRegex(@"\([a-z]+\)$")]
    private static partial Regex AdjectiveMarker();

    [GeneratedRegex("\"([^\"]*)\"")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();
}
