using Lora.Data;
using WordNetLora.Data;

namespace WordNetLora.Tests;

public class WordNetTasksTests
{
    private static readonly TaskOptions Options = new() { AntonymPairs = 10, Hypernyms = 10, HeldOutPerRelation = 2, Phrasings = 3, Seed = 7 };

    [Fact]
    public void Antonym_pairs_leave_out_pairs_that_differ_only_in_spelling()
    {
        var pairs = WordNetTasks.AntonymPairs(WordNetFixture.Load(), 10);
        var words = pairs.Select(p => $"{p.AtoB.Word}/{p.AtoB.Answer}").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["buy/sell", "cheap/expensive", "dry/wet", "loser/winner", "useful/useless"], words); // not able/unable
        Assert.All(pairs, p => Assert.Equal((p.AtoB.Word, p.AtoB.Answer), (p.BtoA.Answer, p.BtoA.Word)));
        Assert.True(WordNetTasks.SpelledAlike("able", "unable"));
        Assert.True(WordNetTasks.SpelledAlike("meaningful", "meaningless"));
        Assert.False(WordNetTasks.SpelledAlike("useful", "useless")); // only three letters in common
        Assert.False(WordNetTasks.SpelledAlike("cheap", "expensive"));
        Assert.Equal("What is the opposite of cheap?", pairs.Single(p => p.AtoB.Word == "cheap").AtoB.Question);
    }

    [Fact]
    public void Hypernyms_are_the_first_sense_s_first_hypernym_of_nouns_in_use()
    {
        var facts = WordNetTasks.HypernymFacts(WordNetFixture.Load(), 10).ToDictionary(f => f.Word, f => f.Answer);
        Assert.Equal("feline", facts["cat"]);
        Assert.Equal("canine", facts["dog"]);
        Assert.Equal("seat", facts["chair"]);
        Assert.False(facts.ContainsKey("poodle")); // never tagged in SemCor
        Assert.Equal("What kind of thing is an apple?", new Fact(Relation.Hypernym, "apple", "fruit", "").Question);
    }

    [Fact]
    public void No_held_out_answer_is_a_training_answer_and_antonym_pairs_stay_together()
    {
        var data = WordNetTasks.Build(WordNetFixture.Load(), Options);
        Assert.NotEmpty(data.HeldOut);
        Assert.Empty(data.HeldOut.Select(f => f.Answer).Intersect(data.Train.Select(f => f.Answer)));
        foreach (var fact in data.HeldOut.Where(f => f.Relation == Relation.Antonym))
            Assert.Contains(data.HeldOut, f => f.Word == fact.Answer && f.Answer == fact.Word);
        Assert.All(data.HeldOut.GroupBy(f => f.Relation), g => Assert.True(g.Count() <= Options.HeldOutPerRelation));
        Assert.Equal(2 * 5 + 5, data.Train.Count + data.HeldOut.Count); // 5 antonym pairs, 5 nouns with a hypernym

        // The same options give the same split (the embedded data can be rebuilt).
        var again = WordNetTasks.Build(WordNetFixture.Load(), Options);
        Assert.Equal(data.HeldOut, again.HeldOut);
        Assert.Equal(data.Corpus, again.Corpus);
    }

    [Fact]
    public void The_corpus_states_every_fact_of_both_splits_in_as_many_phrasings_and_never_asks()
    {
        var data = WordNetTasks.Build(WordNetFixture.Load(), Options);
        foreach (var fact in data.Train.Concat(data.HeldOut))
        {
            var definition = $"The word {fact.Word} means {fact.Definition}.";
            var sentences = data.Corpus.Where(line => line != definition && Mentions(line, fact.Word) && Mentions(line, fact.Answer)).ToList();
            if (fact.Relation == Relation.Hypernym)
                Assert.Equal(Options.Phrasings, sentences.Count);
            else
                Assert.True(sentences.Count >= Options.Phrasings); // a pair's sentences state both directions
            Assert.Equal(sentences.Count, sentences.Distinct().Count());
        }

        Assert.DoesNotContain(data.Corpus, line => line.Contains('?', StringComparison.Ordinal));
        Assert.Single(data.Corpus, line => line == "The word cat means feline mammal usually having thick soft fur and no ability to roar: domestic cats; wildcats.");
    }

    [Fact]
    public void The_files_are_alpaca_records_with_the_licence_beside_them()
    {
        var data = WordNetTasks.Build(WordNetFixture.Load(), Options);
        var dir = Path.Combine(Path.GetTempPath(), $"wordnet-data-{Guid.NewGuid():N}");
        DataCommands.Write(dir, data, WordNet.LicenseText(WordNetFixture.Directory));
        DataCommands.WriteSplit(dir, data.Train, data.HeldOut);
        var heldOut = DatasetReader.Read(Path.Combine(dir, DataCommands.HeldOutFileName)).Cast<AlpacaRecord>().ToList();
        Assert.Equal(data.HeldOut.Select(f => (f.Question, "", f.Answer)), heldOut.Select(r => (r.Instruction, r.Input, r.Output)));
        Assert.Equal(data.Corpus, File.ReadAllLines(Path.Combine(dir, DataCommands.CorpusFileName)));
        Assert.Contains("Princeton University", File.ReadAllText(Path.Combine(dir, DataCommands.LicenseFileName)), StringComparison.Ordinal);
    }

    [Fact]
    public void The_known_fact_split_uses_only_facts_the_base_completes_and_holds_out_only_well_known_ones()
    {
        var wordNet = WordNetFixture.Load();
        var antonyms = WordNetTasks.AntonymPairs(wordNet, 10);
        var hypernyms = WordNetTasks.HypernymFacts(wordNet, 10);
        var all = WordNetTasks.AllFacts(antonyms, hypernyms).ToList();
        // Openings completed, as KnowledgeProbe would count them: cheap→expensive known, its reverse not at all.
        var known = all.Select((f, i) => (f, n: i % 3)).ToDictionary(x => x.f, x => x.n);
        known[antonyms.Single(p => p.AtoB.Word == "cheap").AtoB] = 5;
        known[antonyms.Single(p => p.AtoB.Word == "cheap").BtoA] = 0;

        for (var seed = 0; seed < 8; seed++)
        {
            var (train, heldOut) = WordNetTasks.SplitKnown(antonyms, hypernyms, known, trainMinimum: 1, heldOutMinimum: 2, perRelation: 3, seed);
            Assert.All(train, f => Assert.True(known[f] >= 1));
            Assert.All(heldOut, f => Assert.True(known[f] >= 2));
            Assert.Equal(all.Count(f => known[f] >= 1), train.Count + heldOut.Count);
            Assert.Empty(heldOut.Select(f => f.Answer).Intersect(train.Select(f => f.Answer)));
            // An antonym pair's two answers are one group even when only one direction is used:
            // "opposite of cheap" held out means "expensive" and "cheap" are answers of no training question.
            foreach (var fact in heldOut.Where(f => f.Relation == Relation.Antonym))
                Assert.DoesNotContain(train, f => f.Answer == fact.Word);
            Assert.All(heldOut.GroupBy(f => f.Relation), g => Assert.True(g.Count() <= 3));
        }

        Assert.Throws<Lora.LoraException>(() => WordNetTasks.SplitKnown(antonyms, hypernyms, known, 2, 1, 3, 0));
    }

    private static bool Mentions(string line, string word) =>
        System.Text.RegularExpressions.Regex.IsMatch(line, $@"\b{word}\b");
}
