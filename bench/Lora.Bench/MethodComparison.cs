using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Lora.Backend;
using Lora.Data;
using Lora.Generation;
using Lora.Models;
using Lora.Peft;
using Lora.Tokenization;
using Lora.Training;
using Lora.Tuners.Bottleneck;
using Lora.Tuners.IA3;
using Lora.Tuners.LoRA;
using Lora.Tuners.PrefixTuning;
using Lora.Tuners.PromptTuning;
using Lora.Tuners.PTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// docs/methods.md: every PEFT method on the same task and the same tiny model, measured on this machine.
/// <para>
/// The model is a 4-layer Llama (hidden 128, GQA 4/2 heads, the byte-level tokenizer of tests/fixtures/tokenizers/bytes)
/// pre-trained here from random weights, with full fine-tuning, on four string tasks (copy, reverse, upper, double),
/// so it has skills a prompt can call on. The downstream task is new: <c>shout backwards: abc</c> → <c>CBA</c>
/// (reverse + upper case, an instruction the base never saw). Every method trains on the same 512 examples for the
/// same steps and batch (its own usual learning rate), then is measured on 128 held-out strings: held-out loss,
/// exact-match accuracy of greedy generation, generation speed with the KV cache, and whether it merges.
/// </para>
/// <para>
/// Each method runs in its own process (peak resident memory, VmHWM, is per process): the driver spawns
/// <c>methods --method M</c> children and prints the table. <c>methods [--out DIR] [--steps N] [--pretrain-steps N]</c>;
/// <c>methods --out DIR --table</c> prints the table of a finished run again.
/// </para>
/// </summary>
internal static class MethodComparison
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Method, learning rate: each method's usual range, not tuned per run.</summary>
    private static readonly (string Name, double LearningRate)[] Methods =
    [
        ("base", 0), ("lora", 3e-3), ("dora", 3e-3), ("ia3", 3e-2), ("prefix", 1e-2), ("ptuning-v2", 1e-2), ("prompt", 3e-2),
        ("ptuning", 1e-2), ("adapter-pfeiffer", 3e-3), ("adapter-houlsby", 3e-3), ("full", 1e-3),
    ];

    public static int Run(string[] args)
    {
        string Arg(string name, string fallback) => Array.IndexOf(args, name) is var i and >= 0 ? args[i + 1] : fallback;
        var outDir = Path.GetFullPath(Arg("--out", Path.Combine(Path.GetTempPath(), "lora-methods-bench")));
        var steps = int.Parse(Arg("--steps", "300"), Inv);
        var pretrainSteps = int.Parse(Arg("--pretrain-steps", "1500"), Inv);
        var baseDir = Path.Combine(outDir, "base");
        if (Array.IndexOf(args, "--method") is var m and >= 0)
            return Child(args[m + 1], baseDir, outDir, steps);

        if (Array.IndexOf(args, "--table") >= 0)
            return Table(outDir, JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "methods.json"))).RootElement.EnumerateArray().ToList());

        Directory.CreateDirectory(outDir);
        TorchRuntime.Initialize("cpu");
        torch.set_num_threads(1);
        if (!File.Exists(Path.Combine(baseDir, "model.safetensors")))
            Pretrain(baseDir, outDir, pretrainSteps);

        var rows = new List<JsonElement>();
        foreach (var (name, _) in Methods)
        {
            // Run as `dotnet Lora.Bench.dll` the process is the host: the child needs the assembly path first.
            var host = Environment.ProcessPath!;
            string[] childArgs = ["methods", "--method", name, "--out", outDir, "--steps", steps.ToString(Inv)];
            if (Path.GetFileNameWithoutExtension(host) == "dotnet")
                childArgs = [typeof(MethodComparison).Assembly.Location, .. childArgs];
            var start = new ProcessStartInfo(host, childArgs) { RedirectStandardOutput = true };
            using var child = Process.Start(start)!;
            var output = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            if (child.ExitCode != 0)
            {
                Console.Error.WriteLine($"{name}: exit {child.ExitCode}");
                return 1;
            }

            var row = JsonDocument.Parse(output.Trim().Split('\n')[^1]).RootElement.Clone();
            rows.Add(row);
            Console.Error.WriteLine(row.GetRawText());
        }

        var timing = Timing(baseDir, outDir, rounds: 5);
        rows = rows.Select(r =>
        {
            var row = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(r.GetRawText())!;
            var name = row["method"].GetString()!;
            row["step_ms"] = JsonSerializer.SerializeToElement<double?>(timing.Step.TryGetValue(name, out var ms) ? ms : null);
            row["gen_tokens_per_s"] = JsonSerializer.SerializeToElement(timing.Generation[name]);
            return JsonSerializer.SerializeToElement(row);
        }).ToList();
        File.WriteAllText(Path.Combine(outDir, "methods.json"), JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
        return Table(outDir, rows);
    }

    /// <summary>The markdown table of docs/methods.md from <c>methods.json</c> and the saved runs (<c>--table</c>
    /// prints it again without measuring). "saved values" counts the tensors' elements in the file a method's run
    /// wrote: the adapter's weights (PEFT's or AdapterHub's file; not the training-only encoder state), or the model.</summary>
    private static int Table(string outDir, IReadOnlyList<JsonElement> rows)
    {
        Console.WriteLine("| method | trainable params | % of model | saved values | peak RSS (MiB) | step (ms) | generation (tok/s) | held-out loss | exact match | merges |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in rows)
        {
            var method = r.GetProperty("method").GetString()!;
            Console.WriteLine($"| {method} | {r.GetProperty("trainable").GetInt64().ToString("N0", Inv)} | {r.GetProperty("trainable_percent").GetDouble().ToString("F2", Inv)} | " +
                $"{SavedValues(Path.Combine(outDir, "runs", method))} | {r.GetProperty("peak_rss_mib").GetDouble().ToString("F0", Inv)} | {Opt(r, "step_ms", "F1")} | " +
                $"{r.GetProperty("gen_tokens_per_s").GetDouble().ToString("F0", Inv)} | {r.GetProperty("heldout_loss").GetDouble().ToString("F3", Inv)} | " +
                $"{(r.GetProperty("exact_match").GetDouble() * 100).ToString("F1", Inv)}% | {r.GetProperty("merges").GetString()} |");
        }

        return 0;
    }

    private static string SavedValues(string runDir)
    {
        var file = new[] { PeftAdapter.WeightsFileName, AdapterHubFormat.WeightsFileName, "model.safetensors" }
            .Select(f => Path.Combine(runDir, f)).FirstOrDefault(File.Exists);
        if (file is null)
            return "—";
        using var st = Lora.SafeTensors.SafeTensorsFile.Open(file);
        return st.Tensors.Values.Sum(t => t.ElementCount).ToString("N0", Inv);
    }

    private static string Opt(JsonElement row, string name, string format) =>
        row.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble().ToString(format, Inv) : "—";

    // ---- data ----------------------------------------------------------------------------------------------------

    private static string Word(Random rng) => new(Enumerable.Range(0, rng.Next(3, 9)).Select(_ => (char)('a' + rng.Next(26))).ToArray());

    private static readonly (string Instruction, Func<string, string> Answer)[] PretrainTasks =
    [
        ("copy", w => w),
        ("reverse", w => new string(w.Reverse().ToArray())),
        ("upper", w => w.ToUpperInvariant()),
        ("double", w => string.Concat(w.Select(c => $"{c}{c}"))),
    ];

    private const string TaskInstruction = "shout backwards";

    private static string Answer(string word) => new string(word.Reverse().ToArray()).ToUpperInvariant();

    private static string Prompt(string instruction, string word) => $"{instruction}: {word}\n=> ";

    private static TokenizedExample Example(HfTokenizer tokenizer, string prompt, string answer)
    {
        var p = tokenizer.Encode(prompt);
        var a = tokenizer.Encode(answer, addSpecialTokens: false).Append(tokenizer.EosTokenId!.Value).ToArray();
        return new TokenizedExample([.. p, .. a], [.. Enumerable.Repeat(TokenizedExample.IgnoreIndex, p.Length), .. a]);
    }

    /// <summary>Downstream words: 512 to train on, 128 held out (disjoint), from a fixed seed.</summary>
    private static (List<string> Train, List<string> HeldOut) TaskWords()
    {
        var rng = new Random(20260301);
        var words = new HashSet<string>(StringComparer.Ordinal);
        while (words.Count < 640)
            words.Add(Word(rng));
        var list = words.ToList();
        return (list[..512], list[512..]);
    }

    // ---- the base model ------------------------------------------------------------------------------------------

    private static void Pretrain(string baseDir, string outDir, int steps)
    {
        var source = Path.Combine(outDir, "random");
        Directory.CreateDirectory(source);
        var tokenizerDir = Path.Combine(AppContext.BaseDirectory, "bytes-tokenizer");
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(tokenizerDir, f), Path.Combine(source, f), overwrite: true);
        File.WriteAllText(Path.Combine(source, "config.json"), JsonSerializer.Serialize(new
        {
            architectures = new[] { "LlamaForCausalLM" }, model_type = "llama", vocab_size = 320, hidden_size = 128,
            intermediate_size = 344, num_hidden_layers = 4, num_attention_heads = 4, num_key_value_heads = 2, head_dim = 32,
            max_position_embeddings = 128, rms_norm_eps = 1e-6, rope_theta = 10000.0, tie_word_embeddings = false,
            hidden_act = "silu", bos_token_id = 256, eos_token_id = 257, pad_token_id = 258, initializer_range = 0.02,
            torch_dtype = "float32",
        }));
        using var model = new LlamaForCausalLM((LlamaConfig)ModelConfigLoader.Load(source));
        using (var generator = new Generator(7))
            model.InitializeWeights(generator);
        using (no_grad())
            Lora.SafeTensors.SafeTensorsWriter.WriteCheckpoint(source, model.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)));
        using var loaded = CausalLM.FromPretrained(source);

        var tokenizer = HfTokenizer.Load(source);
        var rng = new Random(11);
        var (taskTrain, taskHeld) = TaskWords();
        var excluded = taskTrain.Concat(taskHeld).ToHashSet(StringComparer.Ordinal);
        var data = new List<TokenizedExample>();
        while (data.Count < 8000)
        {
            var word = Word(rng);
            if (excluded.Contains(word))
                continue;
            var (instruction, answer) = PretrainTasks[rng.Next(PretrainTasks.Length)];
            data.Add(Example(tokenizer, Prompt(instruction, word), answer(word)));
        }

        var clock = Stopwatch.StartNew();
        using var trainer = new Trainer(loaded, new TrainingOptions
        {
            Mode = TrainingMode.Full, LearningRate = 3e-3, Scheduler = SchedulerType.Cosine, WarmupSteps = 50, MaxSteps = steps,
            BatchSize = 32, SaveSteps = 0, LoggingSteps = 100, Seed = 1,
        }, baseDir, data, padTokenId: 258);
        trainer.Logged += e => Console.Error.WriteLine($"pretrain step {e.Step}: loss {e.Loss:F4}");
        trainer.Train();
        Console.Error.WriteLine($"pretrained the base in {clock.Elapsed.TotalSeconds:F0} s ({steps} steps of 32): {baseDir}");
        loaded.eval();
        foreach (var (instruction, answer) in PretrainTasks)
            Console.Error.WriteLine($"base on '{instruction}': exact match {ExactMatch(loaded, tokenizer, taskHeld.Take(64).Select(w => (Prompt(instruction, w), answer(w))).ToList()).Accuracy:P1}");
    }

    // ---- speed, round-robin ----------------------------------------------------------------------------------

    /// <summary>
    /// Step time and generation speed of every method, measured in this one process in rounds that visit every
    /// method in turn (the machine is shared: a slow spell then slows every method alike), median over the rounds.
    /// A step is the Trainer's: forward, loss, backward, clipping, AdamW (batch 16 of the task). Generation is greedy
    /// with the KV cache over 8 held-out prompts, with the trained adapter loaded from its saved directory.
    /// </summary>
    private static (Dictionary<string, double> Step, Dictionary<string, double> Generation) Timing(string baseDir, string outDir, int rounds)
    {
        var tokenizer = HfTokenizer.Load(baseDir);
        var (trainWords, heldWords) = TaskWords();
        var train = trainWords.Select(w => Example(tokenizer, Prompt(TaskInstruction, w), Answer(w))).ToList();
        var held = heldWords.Take(8).Select(w => (Prompt(TaskInstruction, w), Answer(w))).ToList();
        var steps = Methods.ToDictionary(m => m.Name, _ => new List<double>());
        var generation = Methods.ToDictionary(m => m.Name, _ => new List<double>());
        for (var round = 0; round < rounds; round++)
        {
            foreach (var (name, lr) in Methods)
            {
                using (var model = CausalLM.FromPretrained(baseDir))
                {
                    var config = ConfigFor(name, model, baseDir);
                    if (config is not null)
                        PeftInjector.Inject(model, config);
                    if (name != "base")
                    {
                        var dir = Path.Combine(outDir, "timing", name);
                        using var trainer = new Trainer(model, new TrainingOptions
                        {
                            Mode = config is null ? TrainingMode.Full : TrainingMode.Peft, LearningRate = lr, Scheduler = SchedulerType.Constant,
                            // LoggingSteps = 1: the trainer reads a step's values (and raises StepCompleted) only at logging,
                            // evaluation and saving steps; reading every step times each step (on the CPU a read costs nothing).
                            MaxSteps = 12, BatchSize = 16, SaveSteps = 0, OverwriteOutputDirectory = true, LoggingSteps = 1, Seed = 3 + round,
                        }, dir, train, adapterConfig: config, padTokenId: 258);
                        var times = new List<double>();
                        var clock = Stopwatch.StartNew();
                        trainer.StepCompleted += _ =>
                        {
                            times.Add(clock.Elapsed.TotalMilliseconds);
                            clock.Restart();
                        };
                        trainer.Train();
                        steps[name].Add(times.Skip(2).Average());
                    }
                }

                using (var model = CausalLM.FromPretrained(baseDir))
                {
                    var run = Path.Combine(outDir, "runs", name);
                    if (name == "full")
                        model.LoadWeights(run);
                    else if (name != "base")
                        PeftAdapter.Load(model, run);
                    model.eval();
                    generation[name].Add(ExactMatch(model, tokenizer, held).TokensPerSecond);
                }
            }

            Console.Error.WriteLine($"timing round {round + 1}/{rounds} done");
        }

        return (steps.Where(s => s.Value.Count > 0).ToDictionary(s => s.Key, s => Median(s.Value)), generation.ToDictionary(g => g.Key, g => Median(g.Value)));
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    // ---- one method ----------------------------------------------------------------------------------------------

    private static PeftConfig? ConfigFor(string method, CausalLM model, string baseDir) => method switch
    {
        "lora" => new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) },
        "dora" => new LoraConfig { R = 8, LoraAlpha = 16, UseDora = true, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) },
        "ia3" => new Ia3Config(),
        "prefix" => new PrefixTuningConfig { NumVirtualTokens = 20, PrefixProjection = true, EncoderHiddenSize = 128 },
        "ptuning-v2" => new PrefixTuningConfig { NumVirtualTokens = 20 },
        "prompt" => new PromptTuningConfig { NumVirtualTokens = 20, PromptTuningInit = PromptTuningInit.Text, PromptTuningInitText = TaskInstruction, TokenizerNameOrPath = baseDir },
        "ptuning" => new PTuningConfig { NumVirtualTokens = 20, EncoderHiddenSize = 128 },
        "adapter-pfeiffer" => BottleneckConfig.Pfeiffer(size: 16),
        "adapter-houlsby" => BottleneckConfig.Houlsby(size: 16),
        _ => null,
    };

    private static int Child(string method, string baseDir, string outDir, int steps)
    {
        TorchRuntime.Initialize("cpu");
        torch.set_num_threads(1);
        manual_seed(1);
        using var model = CausalLM.FromPretrained(baseDir);
        var tokenizer = HfTokenizer.Load(baseDir);
        var (trainWords, heldWords) = TaskWords();
        var train = trainWords.Select(w => Example(tokenizer, Prompt(TaskInstruction, w), Answer(w))).ToList();
        var held = heldWords.Select(w => (Prompt(TaskInstruction, w), Answer(w))).ToList();
        var heldExamples = held.Select(h => Example(tokenizer, h.Item1, h.Item2)).ToList();
        var lr = Methods.First(x => x.Name == method).LearningRate;
        var config = ConfigFor(method, model, baseDir);
        if (config is not null)
            PeftInjector.Inject(model, config);

        double? trainSeconds = null;
        long trainable = 0;
        var runDir = Path.Combine(outDir, "runs", method);
        if (method != "base")
        {
            if (Directory.Exists(runDir))
                Directory.Delete(runDir, recursive: true);
            var options = new TrainingOptions
            {
                Mode = config is null ? TrainingMode.Full : TrainingMode.Peft, LearningRate = lr, Scheduler = SchedulerType.ConstantWithWarmup,
                WarmupSteps = 20, MaxSteps = steps, BatchSize = 16, SaveSteps = 0, LoggingSteps = 50, Seed = 2,
            };
            using var trainer = new Trainer(model, options, runDir, train, adapterConfig: config, padTokenId: 258);
            trainable = trainer.TrainableParameters.Sum(p => p.Parameter.numel());
            var times = new List<double>();
            var clock = Stopwatch.StartNew();
            trainer.StepCompleted += _ =>
            {
                times.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
            };
            trainer.Train();
            trainSeconds = times.Sum() / 1000;
        }

        model.eval();
        var loss = Lora.Evaluation.Evaluator.Evaluate(model, heldExamples).Loss;
        var (accuracy, _) = ExactMatch(model, tokenizer, held);
        var merges = method switch
        {
            "base" => "—",
            "full" => "n/a (the weights themselves)",
            _ => Merges(model, config, heldExamples),
        };
        var (_, all) = model.ParameterCounts();
        var row = new Dictionary<string, object?>
        {
            ["method"] = method,
            ["learning_rate"] = lr,
            ["trainable"] = trainable,
            ["trainable_percent"] = 100.0 * trainable / all,
            ["peak_rss_mib"] = ProcessMemory.Read("VmHWM"),
            ["train_seconds"] = trainSeconds,
            ["heldout_loss"] = loss,
            ["exact_match"] = accuracy,
            ["merges"] = merges,
            ["steps"] = steps,
        };
        Console.WriteLine(JsonSerializer.Serialize(row));
        return 0;
    }

    /// <summary>Greedy generation over the held-out prompts, one at a time with the KV cache: exact-match accuracy
    /// (the answer then EOS) and new tokens per second.</summary>
    private static (double Accuracy, double TokensPerSecond) ExactMatch(CausalLM model, HfTokenizer tokenizer, List<(string Prompt, string Answer)> items)
    {
        var correct = 0;
        long tokens = 0;
        var clock = Stopwatch.StartNew();
        foreach (var (prompt, answer) in items)
        {
            var result = TokenGenerator.Generate(model, [tokenizer.Encode(prompt)], new GenerationOptions { MaxNewTokens = 12, StopTokenIds = [tokenizer.EosTokenId!.Value] }, 258)[0];
            tokens += result.Tokens.Count;
            var text = tokenizer.Decode(result.Tokens.Where(t => t != tokenizer.EosTokenId), skipSpecialTokens: true);
            if (text == answer && result.Reason == FinishReason.StopToken)
                correct++;
        }

        return ((double)correct / items.Count, tokens / clock.Elapsed.TotalSeconds);
    }

    /// <summary>"yes" when merging folds the adapter in with the same held-out loss, else why not.</summary>
    private static string Merges(CausalLM model, PeftConfig? config, List<TokenizedExample> examples)
    {
        var before = Lora.Evaluation.Evaluator.Evaluate(model, examples.Take(16)).Loss;
        try
        {
            model.MergeAndUnload();
        }
        catch (LoraException)
        {
            return config is PromptLearningConfig ? "no (inputs, not weights)" : "no (non-linear)";
        }

        var after = Lora.Evaluation.Evaluator.Evaluate(model, examples.Take(16)).Loss;
        return Math.Abs(after - before) <= 1e-4 * Math.Abs(before) ? "yes" : $"yes (loss {before:F5} → {after:F5})";
    }
}
