using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using Lora.Data;

namespace WordNetLora.Data;

/// <summary>The verbs that made the embedded default, in order: <c>build-data</c> (WordNet → pretraining corpus,
/// tokenizer), <c>init-model</c> (a random Llama for that tokenizer, which <c>lora train --mode full</c> then
/// pretrains on the corpus) and <c>split-data</c> (the instruction splits, from the facts the pretrained model
/// knows).</summary>
internal static class DataCommands
{
    public const string CorpusFileName = "corpus.txt";

    public const string TrainFileName = "train.json";

    public const string HeldOutFileName = "heldout.json";

    public const string LicenseFileName = "LICENSE-WordNet.txt";

    public const string KnowledgeFileName = "knowledge.tsv";

    public static Command BuildData()
    {
        var defaults = new TaskOptions();
        var wordnet = new Option<string>("--wordnet") { Description = "WordNet 3.0's database directory (Debian: apt-get install wordnet-base).", DefaultValueFactory = _ => "/usr/share/wordnet" };
        var output = new Option<string>("--out") { Description = "Where corpus.txt and the licence go.", DefaultValueFactory = _ => SamplePaths.DataDirectory };
        var tokenizerOut = new Option<string?>("--tokenizer-out") { Description = "Also learn a BPE tokenizer on the corpus and the prompts, written here (tokenizer.json, tokenizer_config.json)." };
        var vocab = new Option<int>("--vocab-size") { Description = "Tokenizer vocabulary size at most.", DefaultValueFactory = _ => 8192 };
        var antonyms = new Option<int>("--antonym-pairs") { Description = "Antonym pairs (two questions each).", DefaultValueFactory = _ => defaults.AntonymPairs };
        var hypernyms = new Option<int>("--hypernyms") { Description = "Noun → hypernym questions.", DefaultValueFactory = _ => defaults.Hypernyms };
        var phrasings = new Option<int>("--phrasings") { Description = "Sentences stating each fact in the corpus, each phrased differently.", DefaultValueFactory = _ => defaults.Phrasings };
        var command = new Command("build-data", "Write the pretraining corpus from WordNet (and optionally learn the tokenizer); split-data writes the instructions after pretraining.")
        {
            wordnet, output, tokenizerOut, vocab, antonyms, hypernyms, phrasings,
        };
        command.SetAction(parse =>
        {
            var source = parse.GetValue(wordnet)!;
            var data = WordNetTasks.Build(WordNet.Load(source), new TaskOptions
            {
                AntonymPairs = parse.GetValue(antonyms),
                Hypernyms = parse.GetValue(hypernyms),
                Phrasings = parse.GetValue(phrasings),
            });
            var dir = parse.GetValue(output)!;
            Write(dir, data, WordNet.LicenseText(source));
            Console.WriteLine($"{dir}: {data.Corpus.Count} corpus sentences about {data.Train.Count + data.HeldOut.Count} facts");
            if (parse.GetValue(tokenizerOut) is { } tokenizerDir)
            {
                var merges = BpeTrainer.Train(TokenizerTexts(data), parse.GetValue(vocab));
                BpeTrainer.Write(tokenizerDir, merges);
                Console.WriteLine($"{tokenizerDir}: tokenizer with {256 + BpeTrainer.SpecialTokens.Count + merges.Count} tokens ({merges.Count} merges)");
            }

            return 0;
        });
        return command;
    }

    /// <summary><c>split-data</c>: probes what the pretrained model knows (<see cref="KnowledgeProbe"/>) and writes
    /// the instruction splits from the known facts, with the probe's counts in knowledge.tsv.</summary>
    public static Command SplitData()
    {
        var defaults = new TaskOptions();
        var wordnet = new Option<string>("--wordnet") { Description = "WordNet 3.0's database directory (Debian: apt-get install wordnet-base).", DefaultValueFactory = _ => "/usr/share/wordnet" };
        var model = new Option<string>("--model") { Description = "The pretrained checkpoint to probe.", DefaultValueFactory = _ => SamplePaths.DefaultModel };
        var output = new Option<string>("--out") { Description = "Where train.json, heldout.json and knowledge.tsv go.", DefaultValueFactory = _ => SamplePaths.DataDirectory };
        var heldOut = new Option<int>("--heldout") { Description = "Held-out questions per relation at most.", DefaultValueFactory = _ => 100 };
        var trainMinimum = new Option<int>("--train-min-openings") { Description = "A fact is used when the base completes at least this many of its corpus openings.", DefaultValueFactory = _ => 1 };
        var heldOutMinimum = new Option<int>("--heldout-min-openings") { Description = "A fact can be held out when the base completes at least this many.", DefaultValueFactory = _ => 2 };
        var command = new Command("split-data", "Probe which WordNet facts the pretrained model knows and write the instruction splits from those.")
        {
            wordnet, model, output, heldOut, trainMinimum, heldOutMinimum,
        };
        command.SetAction(parse =>
        {
            Lora.Backend.TorchRuntime.Initialize("cpu");
            var wn = WordNet.Load(parse.GetValue(wordnet)!);
            var antonyms = WordNetTasks.AntonymPairs(wn, defaults.AntonymPairs);
            var hypernyms = WordNetTasks.HypernymFacts(wn, defaults.Hypernyms);
            var facts = WordNetTasks.AllFacts(antonyms, hypernyms).ToList();
            var modelDir = parse.GetValue(model)!;
            using var m = Lora.Models.CausalLM.FromPretrained(modelDir);
            var hits = KnowledgeProbe.Probe(m, Lora.Tokenization.HfTokenizer.Load(modelDir), facts);
            var known = facts.Select((f, i) => (f, i)).ToDictionary(x => x.f, x => hits[x.i]);
            var (train, held) = WordNetTasks.SplitKnown(antonyms, hypernyms, known,
                parse.GetValue(trainMinimum), parse.GetValue(heldOutMinimum), parse.GetValue(heldOut), defaults.Seed);
            var dir = parse.GetValue(output)!;
            WriteSplit(dir, train, held);
            WriteKnowledge(Path.Combine(dir, KnowledgeFileName), facts, hits);
            foreach (var relation in new[] { Relation.Antonym, Relation.Hypernym })
            {
                var counts = facts.Select((f, i) => (f, h: hits[i])).Where(x => x.f.Relation == relation)
                    .GroupBy(x => x.h).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}");
                Console.WriteLine($"{relation.ToString().ToLowerInvariant()} facts by openings completed: {string.Join(", ", counts)}");
            }

            Console.WriteLine($"{dir}: {train.Count} training and {held.Count} held-out questions, {KnowledgeFileName}");
            return 0;
        });
        return command;
    }

    public static Command InitModel()
    {
        var defaults = new BaseModelShape();
        var tokenizer = new Option<string>("--tokenizer") { Description = "Directory with the tokenizer (tokenizer.json, tokenizer_config.json).", Required = true };
        var output = new Option<string>("--out") { Description = "The checkpoint directory to write.", Required = true };
        var hidden = new Option<int>("--hidden") { DefaultValueFactory = _ => defaults.Hidden };
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => defaults.Layers };
        var heads = new Option<int>("--heads") { DefaultValueFactory = _ => defaults.Heads };
        var kvHeads = new Option<int>("--kv-heads") { DefaultValueFactory = _ => defaults.KvHeads };
        var intermediate = new Option<int>("--intermediate") { DefaultValueFactory = _ => defaults.Intermediate };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 20261201UL };
        var command = new Command("init-model", "Write a randomly initialised Llama checkpoint for a tokenizer (the start of pretraining).")
        {
            tokenizer, output, hidden, layers, heads, kvHeads, intermediate, seed,
        };
        command.SetAction(parse =>
        {
            var shape = new BaseModelShape
            {
                Hidden = parse.GetValue(hidden),
                Layers = parse.GetValue(layers),
                Heads = parse.GetValue(heads),
                KvHeads = parse.GetValue(kvHeads),
                Intermediate = parse.GetValue(intermediate),
            };
            var parameters = BaseModel.Initialize(parse.GetValue(output)!, parse.GetValue(tokenizer)!, shape, parse.GetValue(seed));
            Console.WriteLine($"{parse.GetValue(output)}: {parameters:N0} parameters");
            return 0;
        });
        return command;
    }

    /// <summary>Writes the corpus and WordNet's licence into <paramref name="directory"/>.</summary>
    public static void Write(string directory, TaskData data, string license)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllLines(Path.Combine(directory, CorpusFileName), data.Corpus);
        File.WriteAllText(Path.Combine(directory, LicenseFileName), license);
    }

    /// <summary>Writes the two Alpaca files into <paramref name="directory"/>.</summary>
    public static void WriteSplit(string directory, IEnumerable<Fact> train, IEnumerable<Fact> heldOut)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, TrainFileName), AlpacaJson(train));
        File.WriteAllText(Path.Combine(directory, HeldOutFileName), AlpacaJson(heldOut));
    }

    /// <summary>One line per probed fact: relation, word, answer, and how many of the relation's corpus openings the
    /// base completes with the answer (of <see cref="KnowledgeProbe.OpeningsOf"/>).</summary>
    public static void WriteKnowledge(string path, IReadOnlyList<Fact> facts, IReadOnlyList<int> hits)
    {
        var lines = new List<string> { "relation\tword\tanswer\topenings_completed\topenings" };
        lines.AddRange(facts.Select((f, i) => $"{f.Relation.ToString().ToLowerInvariant()}\t{f.Word}\t{f.Answer}\t{hits[i]}\t{KnowledgeProbe.OpeningsOf(f.Relation)}"));
        File.WriteAllLines(path, lines);
    }

    /// <summary>What the tokenizer learns from: the corpus and every instruction as the model sees it (prompt + answer).</summary>
    public static IEnumerable<string> TokenizerTexts(TaskData data)
    {
        var tokens = new TemplateTokens("<s>", "</s>");
        return data.Corpus.Concat(data.Train.Concat(data.HeldOut).Select(f => PromptTemplate.Alpaca.GenerationPrompt(f.ToRecord(), tokens) + f.Answer));
    }

    /// <summary>An Alpaca JSON array (instruction, input, output), one record per fact.</summary>
    public static string AlpacaJson(IEnumerable<Fact> facts) => JsonSerializer.Serialize(
        facts.Select(f => new { instruction = f.Question, input = string.Empty, output = f.Answer }),
        new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
}
