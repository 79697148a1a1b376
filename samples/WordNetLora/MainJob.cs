using System.Globalization;
using Lora;
using Lora.Backend;
using Lora.Data;
using Lora.Evaluation;
using Lora.Tokenization;
using Lora.Training;
using Spectre.Console;
using TorchSharp;

namespace WordNetLora;

/// <summary>The main job's settings (command-line options).</summary>
public sealed record JobOptions
{
    public string Model { get; init; } = SamplePaths.DefaultModel;

    public string TrainData { get; init; } = SamplePaths.DefaultTrainData;

    public string EvalData { get; init; } = SamplePaths.DefaultEvalData;

    public string Output { get; init; } = SamplePaths.DefaultOutput;

    public bool Overwrite { get; init; }

    public string Device { get; init; } = "auto";

    // 300 steps at 2e-3: the best mean over four seeds of the two best schedules (samples/models/README.md).
    public int MaxSteps { get; init; } = 300;

    public double LearningRate { get; init; } = 2e-3;

    public int BatchSize { get; init; } = 16;

    public int EvalSteps { get; init; } = 50;

    public int MaxLength { get; init; } = 256;

    public int MaxNewTokens { get; init; } = 8;

    public int Seed { get; init; } = 42;

    /// <summary>Held-out prompts shown before and after (spread evenly over the held-out set).</summary>
    public int Show { get; init; } = 3;
}

/// <summary>
/// The README's main job: the [Lora] plan of <see cref="WordNetLlama"/> on a Llama checkpoint, scored on held-out
/// instructions by exact match before and after LoRA training, with the adapter, metrics, loss curve, TensorBoard
/// events and results.json written to the output directory.
/// </summary>
public static class MainJob
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static int Run(JobOptions job)
    {
        foreach (var file in new[] { job.TrainData, job.EvalData })
        {
            if (!File.Exists(file))
                throw new LoraException($"{file}: file not found.");
        }

        if (!File.Exists(Path.Combine(job.Model, "config.json")))
            throw new LoraException($"{job.Model}: not a model directory (config.json not found).");
        Trainer.PrepareOutputDirectory(job.Output, job.Overwrite); // fail now, not after the base evaluation

        var device = TorchRuntime.Initialize(job.Device, notice => Console.Error.WriteLine($"warning: {notice}"));
        torch.manual_seed(job.Seed);
        var tokenizer = HfTokenizer.Load(job.Model);
        using var model = WordNetLlama.FromPretrained(job.Model, torch.ScalarType.Float32, device); // config, weights, typed injection
        model.MarkAdaptersTrainable();

        var plan = WordNetLlama.Plan;
        Console.WriteLine($"model: {SamplePaths.ForResults(job.Model)} ({model.Config.NumLayers} layers, hidden {model.Config.HiddenSize}, vocabulary {model.Config.VocabSize:N0}; device {device.type.ToString().ToLowerInvariant()})");
        Console.WriteLine($"plan: [Lora(R = {plan.R}, Alpha = {plan.LoraAlpha.ToString(Inv)}, Targets = \"{plan.TargetModules}\")] on {nameof(WordNetLlama)} : LlamaForCausalLM, checked at build time");
        var targets = model.AdapterTargets();
        Console.WriteLine($"  {targets.Count} adapted layers: {string.Join(", ", targets.Take(7).Select(t => t.Path))}, …");
        model.PrintTrainableParameters();

        var dataOptions = new DataOptions { MaxLength = job.MaxLength, Template = PromptTemplate.Alpaca };
        var train = InstructionDataset.Load(job.TrainData, tokenizer, dataOptions);
        var evalExamples = InstructionDataset.Load(job.EvalData, tokenizer, dataOptions);
        var evalRecords = ExactMatchEvaluator.ReadRecords(job.EvalData);
        Console.WriteLine($"data: {SamplePaths.ForResults(job.TrainData)} ({train.Examples.Count:N0} examples), held out: {SamplePaths.ForResults(job.EvalData)} ({evalRecords.Count} examples; no held-out answer is a training answer)");
        var shown = Enumerable.Range(0, Math.Min(job.Show, evalRecords.Count)).Select(i => i * evalRecords.Count / Math.Max(1, job.Show)).ToList();

        // Before: the adapters are injected with B = 0 (PEFT's init), so the model computes exactly the base model.
        var baseLoss = Evaluator.Evaluate(model, evalExamples.Examples).Loss;
        // One prompt at a time (batchSize 1): the very computation `lora generate --template alpaca --instruction …`
        // runs, so every answer in answers.jsonl can be reproduced with it bit for bit.
        var before = ExactMatchEvaluator.Evaluate(model, tokenizer, evalRecords, PromptTemplate.Alpaca, job.MaxNewTokens, batchSize: 1);
        Console.WriteLine();
        Console.WriteLine($"base model on the held-out set: eval loss {baseLoss.ToString("F4", Inv)}, exact match {Score(before)}");
        ShowAnswers("base", before, shown);

        var options = new TrainingOptions
        {
            LearningRate = job.LearningRate,
            MaxSteps = job.MaxSteps,
            BatchSize = job.BatchSize,
            EvalBatchSize = 32,
            WarmupSteps = Math.Min(20, job.MaxSteps / 10),
            Scheduler = SchedulerType.Cosine,
            LoggingSteps = 10,
            EvalSteps = job.EvalSteps,
            EvalOnStart = true,
            SaveSteps = 0,
            MaxLength = job.MaxLength,
            Seed = job.Seed,
            OverwriteOutputDirectory = job.Overwrite,
        };
        var tensorBoard = new TensorBoardLogger(Path.Combine(job.Output, TensorBoardLogger.DefaultDirectoryName));
        TrainingResult result;
        using (var trainer = model.AdapterTrainer(train.Examples, options, job.Output, evalExamples.Examples, Collator.PadIdOf(tokenizer)))
        {
            tensorBoard.Attach(trainer);
            Console.WriteLine();
            Console.WriteLine($"training: {trainer.TotalSteps} steps of {options.BatchSize} examples, learning rate {options.LearningRate.ToString(Inv)} (cosine), eval loss on the held-out set every {options.EvalSteps} steps");
            result = Progress.Train(trainer);
        }

        model.eval();
        var after = ExactMatchEvaluator.Evaluate(model, tokenizer, evalRecords, PromptTemplate.Alpaca, job.MaxNewTokens, batchSize: 1);
        tensorBoard.AddScalar("eval/exact_match", before.Score, 0);
        tensorBoard.AddScalar("eval/exact_match", after.Score, result.GlobalStep);
        var trainRows = result.LogHistory.Where(e => e.Loss is not null).ToList();
        var (lastTrain, firstStep) = (trainRows[^1], trainRows.Count > 1 ? trainRows[^2].Step + 1 : 1);
        Console.WriteLine();
        Console.WriteLine($"tuned model on the held-out set: eval loss {result.EvalLoss!.Value.ToString("F4", Inv)}, exact match {Score(after)}  (base: {Score(before)})");
        Console.WriteLine($"  train loss {lastTrain.Loss!.Value.ToString("F4", Inv)} (the last train row of metrics.jsonl: the mean of steps {firstStep}-{lastTrain.Step})");
        ShowAnswers("tuned", after, shown);

        var resultsPath = ResultsFile.Write(job.Output, before, after, job.EvalData, job.Model);
        Console.WriteLine();
        Console.WriteLine($"wrote {Path.GetFullPath(job.Output)}:");
        var runs = TensorBoardLogger.DefaultDirectoryName + "/";
        foreach (var (files, what) in new[]
        {
            ("adapter_config.json, adapter_model.safetensors", "the PEFT adapter (lora eval/generate --adapter; PeftModel.from_pretrained)"),
            ($"{Trainer.MetricsFileName}, {Trainer.LossCurveFileName}", "the training log and the loss curve (train solid, eval dashed)"),
            (runs, $"TensorBoard event files (tensorboard --logdir {Path.Combine(job.Output, runs)})"),
            ($"{Path.GetFileName(resultsPath)}, {ResultsFile.AnswersFileName}", "exact match before/after, and every held-out answer"),
        })
        {
            Console.WriteLine($"  {files,-48} {what}");
        }

        Console.WriteLine();
        Console.WriteLine("try it:");
        Console.WriteLine($"  dotnet run --project src/Lora.Cli -- generate --model {SamplePaths.ForResults(job.Model)} --adapter {SamplePaths.ForResults(job.Output)} --template alpaca --instruction \"{evalRecords[shown.FirstOrDefault()].Instruction}\"");
        return 0;
    }

    private static string Score(ExactMatchResult r) =>
        $"{r.Score.ToString("F3", Inv)} ({r.Correct}/{r.Examples.Count})";

    private static void ShowAnswers(string who, ExactMatchResult result, IReadOnlyList<int> shown)
    {
        foreach (var i in shown)
        {
            var e = result.Examples[i];
            Console.WriteLine($"  {e.Record.Instruction,-42} expected {e.Record.Output,-14} {who}: {Quote(e.Generated)} {(e.IsMatch ? "(right)" : "(wrong)")}");
        }
    }

    private static string Quote(string text)
    {
        var line = text.Trim().ReplaceLineEndings(" ");
        return "\"" + (line.Length > 40 ? line[..40] + "…" : line) + "\"";
    }

    /// <summary>A progress bar on a terminal (step, loss, ETA; eval rows printed above it), one line per log row
    /// when the output is redirected.</summary>
    private static class Progress
    {
        public static TrainingResult Train(Trainer trainer)
        {
            if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            {
                trainer.Logged += e => Console.WriteLine(Format(e, trainer.TotalSteps));
                return trainer.Train();
            }

            TrainingResult? result = null;
            AnsiConsole.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("training", maxValue: trainer.TotalSteps);
                    trainer.StepCompleted += p =>
                    {
                        task.Value = p.Step;
                        task.Description = $"step {p.Step}/{p.TotalSteps} loss {p.Loss.ToString("F4", Inv)}";
                    };
                    trainer.Logged += e =>
                    {
                        if (e.IsEval)
                            AnsiConsole.MarkupLine(Markup.Escape(Format(e, trainer.TotalSteps)));
                    };
                    result = trainer.Train();
                    task.Value = trainer.TotalSteps;
                });
            return result!;
        }

        private static string Format(TrainingLogEntry e, int total) => e.IsEval
            ? $"  step {e.Step,4}/{total}  eval_loss {e.EvalLoss!.Value.ToString("F4", Inv)}"
            : $"  step {e.Step,4}/{total}  loss {e.Loss!.Value.ToString("F4", Inv)}  lr {e.LearningRate!.Value.ToString("0.000e+0", Inv)}  {e.TokensPerSecond!.Value.ToString("F0", Inv)} tok/s";
    }
}
