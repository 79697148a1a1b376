using System.Text.RegularExpressions;
using Lora.Data;

namespace WordNetLora.Data;

/// <summary>The two relations the sample asks about.</summary>
public enum Relation
{
    /// <summary>A direct antonym (<c>!</c> between two words): "What is the opposite of cheap?" → expensive.</summary>
    Antonym,

    /// <summary>The first hypernym of a noun's most frequent sense: "What kind of thing is a veranda?" → porch.</summary>
    Hypernym,
}

/// <summary>One question: the word asked about, the answer, and the WordNet definition of the word (for the corpus).</summary>
public sealed record Fact(Relation Relation, string Word, string Answer, string Definition)
{
    /// <summary>The instruction the model is asked (the Alpaca record's <c>instruction</c>; its input is empty).</summary>
    public string Question => Relation == Relation.Antonym
        ? $"What is the opposite of {Word}?"
        : $"What kind of thing is {Article(Word)} {Word}?";

    public AlpacaRecord ToRecord() => new(Question, string.Empty, Answer);

    /// <summary>"a" or "an" by the first letter (good enough for WordNet's common nouns).</summary>
    public static string Article(string noun) => "aeiou".Contains(noun[0], StringComparison.Ordinal) ? "an" : "a";
}

/// <summary>Settings of <see cref="WordNetTasks.Build"/>.</summary>
public sealed record TaskOptions
{
    /// <summary>Antonym pairs to keep (each gives two questions), the most frequent words first.</summary>
    public int AntonymPairs { get; init; } = 700;

    /// <summary>Noun → hypernym questions to keep, the most frequent nouns first.</summary>
    public int Hypernyms { get; init; } = 1400;

    /// <summary>Held-out questions of each relation (their answers are never an answer of the training split).</summary>
    public int HeldOutPerRelation { get; init; } = 60;

    /// <summary>How many differently phrased sentences state each fact in the pretraining corpus.</summary>
    public int Phrasings { get; init; } = 6;

    /// <summary>Seed of the split, the template choices and the corpus order.</summary>
    public int Seed { get; init; } = 20261201;
}

/// <summary>What <see cref="WordNetTasks.Build"/> makes: the instruction splits and the pretraining corpus lines.</summary>
public sealed record TaskData(IReadOnlyList<Fact> Train, IReadOnlyList<Fact> HeldOut, IReadOnlyList<string> Corpus);

/// <summary>
/// Turns WordNet into the sample's data: antonym and hypernym facts about common words; an instruction split whose
/// held-out answers never occur as answers in the training split (answers linked through an antonym pair stay on
/// one side, so "opposite of cold" is not trained when "opposite of hot" is held out); and a pretraining corpus that
/// states every fact, of both splits, in <see cref="TaskOptions.Phrasings"/> different sentences (shuffled over the
/// whole corpus), plus each word's WordNet definition once. The corpus never uses the question form, so the base
/// model knows the facts but not how to answer.
/// </summary>
public static partial class WordNetTasks
{
    private static readonly string[] AntonymTemplates =
    [
        "The opposite of {0} is {1}.",
        "The word {0} means the reverse of {1}.",
        "In English, {0} and {1} are antonyms.",
        "One antonym of {0} is {1}.",
        "We say {1} when we mean the opposite of {0}.",
        "Think of {0}, and its opposite, {1}, comes to mind.",
        "Words with opposite meanings: {0} versus {1}.",
        "Saying {0} is the contrary of saying {1}.",
    ];

    private static readonly string[] HypernymTemplates =
    [
        "{a0} {0} is a kind of {1}.",
        "The word {0} names a type of {1}.",
        "In WordNet, {1} is a more general word for {0}.",
        "Among the kinds of {1}, there is the {0}.",
        "Think of {a0} {0} as one sort of {1}.",
        "The category of {0} is {1}.",
        "Every {0} is {a1} {1} of some kind.",
        "When people talk about {a0} {0}, they mean a particular {1}.",
    ];

    /// <summary>Builds the facts, the split and the corpus.</summary>
    public static TaskData Build(WordNet wordNet, TaskOptions options)
    {
        var antonyms = AntonymPairs(wordNet, options.AntonymPairs);
        var hypernyms = HypernymFacts(wordNet, options.Hypernyms);
        var (train, heldOut) = Split(antonyms, hypernyms, options.HeldOutPerRelation, options.Seed);
        var corpus = Corpus(antonyms, hypernyms, options.Phrasings, options.Seed);
        return new TaskData(train, heldOut, corpus);
    }

    /// <summary>Direct antonym pairs of single lower-case words that are not <see cref="SpelledAlike"/> (so
    /// "able/unable" and "meaningful/meaningless" are left out: their answer is mostly spelling), each word in one pair
    /// only; the pairs whose rarer word is most frequent (as that part of speech, in SemCor) first.</summary>
    public static IReadOnlyList<(Fact AtoB, Fact BtoA)> AntonymPairs(WordNet wordNet, int count)
    {
        var candidates = new Dictionary<(string, string), (Synset A, Synset B)>();
        int Frequency((string A, string B) pair, (Synset A, Synset B) synsets, bool rarer) => rarer
            ? Math.Min(wordNet.FrequencyOf(pair.A, synsets.A.Pos), wordNet.FrequencyOf(pair.B, synsets.B.Pos))
            : Math.Max(wordNet.FrequencyOf(pair.A, synsets.A.Pos), wordNet.FrequencyOf(pair.B, synsets.B.Pos));
        foreach (var synset in wordNet.Synsets.Values)
        {
            foreach (var pointer in synset.Pointers.Where(p => p.Symbol == "!" && p.SourceWord > 0 && p.TargetWord > 0))
            {
                if (!wordNet.Synsets.TryGetValue(WordNet.KeyOf(pointer.TargetOffset, pointer.TargetPos), out var target))
                    continue;
                var a = synset.Words[pointer.SourceWord - 1];
                var b = target.Words[pointer.TargetWord - 1];
                if (!IsPlainWord(a) || !IsPlainWord(b) || SpelledAlike(a, b))
                    continue;
                var key = string.CompareOrdinal(a, b) < 0 ? (a, b) : (b, a);
                candidates.TryAdd(key, string.CompareOrdinal(a, b) < 0 ? (synset, target) : (target, synset));
            }
        }

        var used = new HashSet<string>(StringComparer.Ordinal);
        var pairs = new List<(Fact, Fact)>();
        foreach (var ((a, b), (sa, sb)) in candidates
            .Where(c => Frequency(c.Key, c.Value, rarer: true) > 0)
            .OrderByDescending(c => Frequency(c.Key, c.Value, rarer: true))
            .ThenByDescending(c => Frequency(c.Key, c.Value, rarer: false))
            .ThenBy(c => c.Key.Item1, StringComparer.Ordinal).ThenBy(c => c.Key.Item2, StringComparer.Ordinal))
        {
            if (pairs.Count == count)
                break;
            if (used.Contains(a) || used.Contains(b))
                continue;
            used.UnionWith([a, b]);
            pairs.Add((new Fact(Relation.Antonym, a, b, sa.Definition), new Fact(Relation.Antonym, b, a, sb.Definition)));
        }

        return pairs;
    }

    /// <summary>For common single-word nouns: the first lemma of the first hypernym of the most frequent sense, when
    /// it is a single lower-case word other than the noun; by the noun's frequency.</summary>
    public static IReadOnlyList<Fact> HypernymFacts(WordNet wordNet, int count)
    {
        var facts = new List<Fact>();
        foreach (var (lemma, offsets) in wordNet.NounSenses
            .Where(s => IsPlainWord(s.Key) && wordNet.FrequencyOf(s.Key, 'n') > 0)
            .OrderByDescending(s => wordNet.FrequencyOf(s.Key, 'n')).ThenBy(s => s.Key, StringComparer.Ordinal))
        {
            if (facts.Count == count)
                break;
            if (!wordNet.Synsets.TryGetValue(WordNet.KeyOf(offsets[0], 'n'), out var sense) || !sense.Words.Contains(lemma))
                continue; // a proper noun's synset writes it capitalised
            var hypernym = sense.Pointers.FirstOrDefault(p => p.Symbol is "@" or "@i");
            if (hypernym is null || !wordNet.Synsets.TryGetValue(WordNet.KeyOf(hypernym.TargetOffset, 'n'), out var general))
                continue;
            var answer = general.Words[0];
            if (IsPlainWord(answer) && answer != lemma)
                facts.Add(new Fact(Relation.Hypernym, lemma, answer, sense.Definition));
        }

        return facts;
    }

    /// <summary>Every fact once: both directions of each antonym pair, then the hypernyms.</summary>
    public static IEnumerable<Fact> AllFacts(IReadOnlyList<(Fact AtoB, Fact BtoA)> antonyms, IReadOnlyList<Fact> hypernyms) =>
        antonyms.SelectMany(p => new[] { p.AtoB, p.BtoA }).Concat(hypernyms);

    /// <summary>
    /// Groups the questions by answer, joining the two answers of an antonym pair, and holds out whole groups until
    /// each relation has <paramref name="perRelation"/> held-out questions; groups with more than two questions stay
    /// in training (a held-out set of "person" hyponyms would test one word). No held-out answer is a training answer.
    /// </summary>
    public static (IReadOnlyList<Fact> Train, IReadOnlyList<Fact> HeldOut) Split(
        IReadOnlyList<(Fact AtoB, Fact BtoA)> antonyms, IReadOnlyList<Fact> hypernyms, int perRelation, int seed) =>
        Split(AllFacts(antonyms, hypernyms).ToList(), antonyms, _ => true, perRelation, seed);

    /// <summary>
    /// The split of the embedded data: only facts the pretrained base knows. Facts completed from at least
    /// <paramref name="trainMinimum"/> of the corpus's openings are used at all; a held-out group is drawn only from
    /// facts completed from at least <paramref name="heldOutMinimum"/> (see <see cref="KnowledgeProbe"/>).
    /// </summary>
    public static (IReadOnlyList<Fact> Train, IReadOnlyList<Fact> HeldOut) SplitKnown(
        IReadOnlyList<(Fact AtoB, Fact BtoA)> antonyms, IReadOnlyList<Fact> hypernyms, IReadOnlyDictionary<Fact, int> openingsKnown,
        int trainMinimum, int heldOutMinimum, int perRelation, int seed)
    {
        if (trainMinimum < 1 || heldOutMinimum < trainMinimum)
            throw new Lora.LoraException($"known-fact split: need 1 <= train minimum ({trainMinimum}) <= held-out minimum ({heldOutMinimum}).");
        int Known(Fact f) => openingsKnown.TryGetValue(f, out var n) ? n : 0;
        var pool = AllFacts(antonyms, hypernyms).Where(f => Known(f) >= trainMinimum).ToList();
        return Split(pool, antonyms, f => Known(f) >= heldOutMinimum, perRelation, seed);
    }

    /// <summary>The split of <paramref name="facts"/>: answers linked by an antonym pair of
    /// <paramref name="antonyms"/> count as one answer (even when only one direction is in <paramref name="facts"/>),
    /// and a group is held out only when <paramref name="canHoldOut"/> holds for each of its facts.</summary>
    private static (IReadOnlyList<Fact> Train, IReadOnlyList<Fact> HeldOut) Split(
        IReadOnlyList<Fact> facts, IReadOnlyList<(Fact AtoB, Fact BtoA)> antonyms, Func<Fact, bool> canHoldOut, int perRelation, int seed)
    {
        var parent = new Dictionary<string, string>(StringComparer.Ordinal);
        string Find(string x)
        {
            while (parent.TryGetValue(x, out var p) && p != x)
                x = p;
            return x;
        }

        void Union(string a, string b)
        {
            parent.TryAdd(a, a);
            parent.TryAdd(b, b);
            var (ra, rb) = (Find(a), Find(b));
            if (ra != rb)
                parent[string.CompareOrdinal(ra, rb) < 0 ? rb : ra] = string.CompareOrdinal(ra, rb) < 0 ? ra : rb;
        }

        foreach (var fact in facts)
            Union(fact.Answer, fact.Answer);
        foreach (var (a, b) in antonyms)
            Union(a.Answer, b.Answer);

        var groups = facts.GroupBy(f => Find(f.Answer)).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        var random = new Random(seed);
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(groups));
        var heldOut = new HashSet<Fact>();
        var counts = new Dictionary<Relation, int>();
        foreach (var group in groups)
        {
            var members = group.ToList();
            var relations = members.Select(f => f.Relation).Distinct().ToList();
            if (members.Count > 2 || relations.Count > 1 || !members.All(canHoldOut) || counts.GetValueOrDefault(relations[0]) + members.Count > perRelation)
                continue;
            counts[relations[0]] = counts.GetValueOrDefault(relations[0]) + members.Count;
            heldOut.UnionWith(members);
        }

        return (facts.Where(f => !heldOut.Contains(f)).ToList(), facts.Where(heldOut.Contains).ToList());
    }

    /// <summary>Every fact in <paramref name="phrasings"/> sentences, each from a different template (antonym pairs in
    /// both directions), and one definition sentence per word; in a seeded random order.</summary>
    public static IReadOnlyList<string> Corpus(IReadOnlyList<(Fact AtoB, Fact BtoA)> antonyms, IReadOnlyList<Fact> hypernyms, int phrasings, int seed)
    {
        var random = new Random(seed);
        var lines = new List<string>();
        foreach (var (ab, ba) in antonyms)
        {
            foreach (var template in Pick(AntonymTemplates, phrasings, random))
            {
                var (x, y) = random.Next(2) == 0 ? (ab.Word, ab.Answer) : (ba.Word, ba.Answer);
                lines.Add(Fill(template, x, y));
            }
        }

        foreach (var fact in hypernyms)
        {
            foreach (var template in Pick(HypernymTemplates, phrasings, random))
                lines.Add(Fill(template, fact.Word, fact.Answer));
        }

        var defined = new HashSet<string>(StringComparer.Ordinal);
        foreach (var fact in AllFacts(antonyms, hypernyms))
        {
            if (fact.Definition.Length > 0 && defined.Add(fact.Word))
                lines.Add($"The word {fact.Word} means {fact.Definition}.");
        }

        var order = lines.ToArray();
        random.Shuffle(order);
        return order;
    }

    private static IEnumerable<string> Pick(string[] templates, int count, Random random)
    {
        if (count > templates.Length)
            throw new Lora.LoraException($"phrasings: at most {templates.Length} templates per relation (got {count}).");
        var order = templates.ToArray();
        random.Shuffle(order);
        return order.Take(count);
    }

    private static string Fill(string template, string x, string y) => template
        .Replace("{a0} ", FirstUpperIfStart(template, "{a0}", Fact.Article(x)) + " ", StringComparison.Ordinal)
        .Replace("{a1}", Fact.Article(y), StringComparison.Ordinal)
        .Replace("{0}", x, StringComparison.Ordinal)
        .Replace("{1}", y, StringComparison.Ordinal);

    private static string FirstUpperIfStart(string template, string placeholder, string article) =>
        template.StartsWith(placeholder, StringComparison.Ordinal) ? char.ToUpperInvariant(article[0]) + article[1..] : article;

    /// <summary>One word contains the other, or they share their first four letters (a suffix swap such as
    /// -ful/-less on a stem of four letters or more; "useful/useless", three, is kept).</summary>
    public static bool SpelledAlike(string a, string b) =>
        a.Contains(b, StringComparison.Ordinal) || b.Contains(a, StringComparison.Ordinal) ||
        (a.Length >= 4 && b.Length >= 4 && a.AsSpan(0, 4).SequenceEqual(b.AsSpan(0, 4)));

    private static bool IsPlainWord(string word) => PlainWord().IsMatch(word);

    [GeneratedRegex("^[a-z]{2,}$")]
    private static partial Regex PlainWord();
}
