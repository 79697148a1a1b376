using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using Lora.Data;

namespace WordNetLora.Data;

/// <summary>The verbs that made the embedded default: <c>build-data</c> (WordNet → instructions, corpus,
/// tokenizer) and <c>init-model</c> (a random Llama for that tokenizer, which <c>lora train --mode full</c> then
/// pretrains on the corpus).</summary>
internal static class DataCommands
{
    public const string CorpusFileName = "corpus.txt";

    public const string TrainFileName = "train.json";

    public const string HeldOutFileName = "heldout.json";

    public const string LicenseFileName = "LICENSE-WordNet.txt";

    public static Command BuildData()
    {
        var defaults = new TaskOptions();
        var wordnet = new Option<string>("--wordnet") { Description = "WordNet 3.0's database directory (Debian: apt-get install wordnet-base).", DefaultValueFactory = _ => "/usr/share/wordnet" };
        var output = new Option<string>("--out") { Description = "Where corpus.txt, train.json, heldout.json and the licence go.", DefaultValueFactory = _ => SamplePaths.DataDirectory };
        var tokenizerOut = new Option<string?>("--tokenizer-out") { Description = "Also learn a BPE tokenizer on the corpus and the prompts, written here (tokenizer.json, tokenizer_config.json)." };
        var vocab = new Option<int>("--vocab-size") { Description = "Tokenizer vocabulary size at most.", DefaultValueFactory = _ => 8192 };
        var antonyms = new Option<int>("--antonym-pairs") { Description = "Antonym pairs (two questions each).", DefaultValueFactory = _ => defaults.AntonymPairs };
        var hypernyms = new Option<int>("--hypernyms") { Description = "Noun → hypernym questions.", DefaultValueFactory = _ => defaults.Hypernyms };
        var heldOut = new Option<int>("--heldout") { Description = "Held-out questions per relation.", DefaultValueFactory = _ => defaults.HeldOutPerRelation };
        var phrasings = new Option<int>("--phrasings") { Description = "Sentences stating each fact in the corpus, each phrased differently.", DefaultValueFactory = _ => defaults.Phrasings };
        var command = new Command("build-data", "Write the instruction splits and the pretraining corpus from WordNet (and optionally learn the tokenizer).")
        {
            wordnet, output, tokenizerOut, vocab, antonyms, hypernyms, heldOut, phrasings,
        };
        command.SetAction(parse =>
        {
            var source = parse.GetValue(wordnet)!;
            var data = WordNetTasks.Build(WordNet.Load(source), new TaskOptions
            {
                AntonymPairs = parse.GetValue(antonyms),
                Hypernyms = parse.GetValue(hypernyms),
                HeldOutPerRelation = parse.GetValue(heldOut),
                Phrasings = parse.GetValue(phrasings),
            });
            var dir = parse.GetValue(output)!;
            Write(dir, data, WordNet.LicenseText(source));
            Console.WriteLine($"{dir}: {data.Train.Count} training and {data.HeldOut.Count} held-out questions, {data.Corpus.Count} corpus sentences");
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

    /// <summary>Writes the corpus, the two Alpaca files and WordNet's licence into <paramref name="directory"/>.</summary>
    public static void Write(string directory, TaskData data, string license)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllLines(Path.Combine(directory, CorpusFileName), data.Corpus);
        File.WriteAllText(Path.Combine(directory, TrainFileName), AlpacaJson(data.Train));
        File.WriteAllText(Path.Combine(directory, HeldOutFileName), AlpacaJson(data.HeldOut));
        File.WriteAllText(Path.Combine(directory, LicenseFileName), license);
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
