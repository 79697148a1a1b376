using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Lora.Adapters;
using Lora.Backend;
using Lora.Data;
using Lora.Models;
using Lora.Tokenization;
using Lora.Training;
using Spectre.Console;
using TorchSharp;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora train</c>: LoRA instruction tuning of a Hugging Face model on an Alpaca/chat/text file with the
/// <see cref="Trainer"/>; writes the PEFT adapter, <c>checkpoint-N</c> directories, <c>metrics.jsonl</c> and
/// <c>loss.svg</c> to <c>--out</c>. See docs/training.md.
/// </summary>
internal static class TrainCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var data = new Option<string>("--data") { Description = "Training data: Alpaca JSON/JSONL, chat messages JSONL, or plain text.", Required = true };
        var output = new Option<string>("--out") { Description = "Output directory (adapter, checkpoints, metrics.jsonl, loss.svg).", Required = true };
        var initAdapter = new Option<string?>("--init-adapter") { Description = "Start from this PEFT adapter (its r, alpha and targets are used)." };
        var r = new Option<int?>("--r") { Description = "LoRA rank (default 8)." };
        var alpha = new Option<double?>("--alpha") { Description = "LoRA alpha (default 16)." };
        var targets = new Option<string?>("--targets") { Description = "Layers to adapt: names (q_proj,v_proj), a regex on leaf or path, or all-linear (default: PEFT's for the model type)." };
        var dropout = new Option<double?>("--lora-dropout") { Description = "Dropout on the adapter input (default 0.05)." };
        var template = new Option<string?>("--template") { Description = "Prompt template: alpaca, llama2, chatml, or a custom template string (default: by record format)." };
        var maxLength = new Option<int>("--max-length") { Description = "Examples are cut to this many tokens; packed rows have this length.", DefaultValueFactory = _ => 1024 };
        var packing = new Option<bool>("--packing") { Description = "Pack examples into rows of --max-length tokens (attention stays inside each example)." };
        var lr = new Option<double>("--learning-rate") { Description = "Peak learning rate.", DefaultValueFactory = _ => 2e-4 };
        var wd = new Option<double>("--weight-decay") { Description = "AdamW weight decay (not on biases and norm weights).", DefaultValueFactory = _ => 0.0 };
        var scheduler = new Option<string>("--scheduler") { Description = "constant, constant_with_warmup, linear or cosine.", DefaultValueFactory = _ => "linear" };
        var warmupSteps = new Option<int?>("--warmup-steps") { Description = "Linear warmup from 0 over N steps (default 0)." };
        var warmupRatio = new Option<double?>("--warmup-ratio") { Description = "Warmup over ceil(total steps × F) steps." };
        var epochs = new Option<double?>("--epochs") { Description = "Passes over the data (default 3)." };
        var maxSteps = new Option<int?>("--max-steps") { Description = "Optimizer steps to run (instead of --epochs)." };
        var batchSize = new Option<int>("--batch-size") { Description = "Examples per micro-batch.", DefaultValueFactory = _ => 8 };
        var gradAccum = new Option<int>("--grad-accum") { Description = "Micro-batches per optimizer step.", DefaultValueFactory = _ => 1 };
        var maxGradNorm = new Option<double>("--max-grad-norm") { Description = "Clip the global gradient norm (0 = off).", DefaultValueFactory = _ => 1.0 };
        var noShuffle = new Option<bool>("--no-shuffle") { Description = "Read the data in file order." };
        var groupByLength = new Option<bool>("--group-by-length") { Description = "Batch examples of similar length (transformers' group_by_length)." };
        var loggingSteps = new Option<int>("--logging-steps") { Description = "Log every N steps.", DefaultValueFactory = _ => 10 };
        var evalData = new Option<string?>("--eval-data") { Description = "Evaluation data (same formats as --data)." };
        var evalSteps = new Option<int?>("--eval-steps") { Description = "Evaluate every N steps (default: --logging-steps)." };
        var saveSteps = new Option<int>("--save-steps") { Description = "Write checkpoint-N every N steps (and at the end; 0 = none).", DefaultValueFactory = _ => 500 };
        var saveTotalLimit = new Option<int?>("--save-total-limit") { Description = "Keep only the newest K checkpoints." };
        var resume = new Option<string?>("--resume") { Description = "Resume from a checkpoint directory, or the latest checkpoint in --out.", Arity = ArgumentArity.ZeroOrOne };
        var seed = new Option<int>("--seed") { Description = "Seed for adapter init, dropout and data order.", DefaultValueFactory = _ => 42 };
        var bf16 = new Option<bool>("--bf16") { Description = "CUDA only: bfloat16 base model compute, fp32 adapters and optimizer." };
        var checkpointing = new Option<bool>("--gradient-checkpointing") { Description = "Recompute decoder layers in the backward pass (less memory)." };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var mode = new Option<string>("--mode") { Description = "lora (an adapter, the default), full (every weight) or top-layers (the last --top-layers blocks and the final norm).", DefaultValueFactory = _ => "lora" };
        var topLayers = new Option<int>("--top-layers") { Description = "For --mode top-layers: how many of the last decoder blocks train.", DefaultValueFactory = _ => 2 };
        var command = new Command("train", "Fine-tune a model on instruction data: a LoRA adapter (default), or all / the top layers' weights.")
        {
            mode, topLayers, model, data, output, initAdapter, r, alpha, targets, dropout, template, maxLength, packing, lr, wd, scheduler,
            warmupSteps, warmupRatio, epochs, maxSteps, batchSize, gradAccum, maxGradNorm, noShuffle, groupByLength,
            loggingSteps, evalData, evalSteps, saveSteps, saveTotalLimit, resume, seed, bf16, checkpointing, device, json,
        };
        command.SetAction(parse =>
        {
            var asJson = parse.GetValue(json);
            var outDir = parse.GetValue(output)!;
            var modelDir = parse.GetValue(model)!;

            // Conflicts first: nothing is loaded for a command line that cannot run.
            var trainingMode = parse.GetValue(mode)!.ToLowerInvariant() switch
            {
                "lora" => TrainingMode.Lora,
                "full" => TrainingMode.Full,
                "top-layers" => TrainingMode.TopLayers,
                var other => throw new LoraException($"--mode '{other}' is not one of lora, full, top-layers."),
            };
            if (trainingMode != TrainingMode.Lora && (parse.GetValue(initAdapter) is not null || parse.GetValue(r) is not null || parse.GetValue(alpha) is not null || parse.GetValue(targets) is not null || parse.GetValue(dropout) is not null))
                throw new LoraException($"--mode {parse.GetValue(mode)} trains the model's own weights: drop the LoRA options (--init-adapter, --r, --alpha, --targets, --lora-dropout).");
            if (parse.GetValue(epochs) is not null && parse.GetValue(maxSteps) is not null)
                throw new LoraException("--epochs and --max-steps conflict: give one (--max-steps overrides epochs in transformers; here it is an error).");
            if (parse.GetValue(warmupSteps) is not null && parse.GetValue(warmupRatio) is not null)
                throw new LoraException("--warmup-steps and --warmup-ratio conflict: give one.");
            if (parse.GetValue(noShuffle) && parse.GetValue(groupByLength))
                throw new LoraException("--no-shuffle and --group-by-length conflict: give one.");
            if (parse.GetValue(evalSteps) is not null && parse.GetValue(evalData) is null)
                throw new LoraException("--eval-steps needs --eval-data FILE.");
            if (parse.GetValue(initAdapter) is not null && (parse.GetValue(r) is not null || parse.GetValue(alpha) is not null || parse.GetValue(targets) is not null || parse.GetValue(dropout) is not null))
                throw new LoraException("--init-adapter takes r, alpha, targets and dropout from its adapter_config.json; drop --r/--alpha/--targets/--lora-dropout.");
            if (!File.Exists(parse.GetValue(data)))
                throw new LoraException($"{parse.GetValue(data)}: file not found.");
            if (parse.GetValue(evalData) is { } ed && !File.Exists(ed))
                throw new LoraException($"{ed}: file not found.");
            string? resumeFrom = null;
            if (parse.GetResult(resume) is not null)
            {
                resumeFrom = parse.GetValue(resume) ?? TrainingCheckpoints.Latest(outDir)
                    ?? throw new LoraException($"{outDir}: --resume found no checkpoint-N directory to resume from.");
                if (!Directory.Exists(resumeFrom))
                    throw new LoraException($"{resumeFrom}: checkpoint directory not found.");
            }

            var options = new TrainingOptions
            {
                LearningRate = parse.GetValue(lr),
                WeightDecay = parse.GetValue(wd),
                Scheduler = LearningRateSchedule.ParseType(parse.GetValue(scheduler)!),
                WarmupSteps = parse.GetValue(warmupSteps) ?? 0,
                WarmupRatio = parse.GetValue(warmupRatio),
                Epochs = parse.GetValue(epochs) ?? 3,
                MaxSteps = parse.GetValue(maxSteps) ?? -1,
                BatchSize = parse.GetValue(batchSize),
                EvalBatchSize = parse.GetValue(batchSize),
                GradientAccumulationSteps = parse.GetValue(gradAccum),
                MaxGradNorm = parse.GetValue(maxGradNorm),
                Seed = parse.GetValue(seed),
                Sampling = parse.GetValue(noShuffle) ? SamplingStrategy.Sequential : parse.GetValue(groupByLength) ? SamplingStrategy.GroupByLength : SamplingStrategy.Random,
                LoggingSteps = parse.GetValue(loggingSteps),
                EvalSteps = parse.GetValue(evalSteps),
                SaveSteps = parse.GetValue(saveSteps),
                SaveTotalLimit = parse.GetValue(saveTotalLimit),
                Packing = parse.GetValue(packing),
                MaxLength = parse.GetValue(maxLength),
                Bf16 = parse.GetValue(bf16),
                GradientCheckpointing = parse.GetValue(checkpointing),
                Mode = trainingMode,
                TopLayers = parse.GetValue(topLayers),
            };
            options.Validate();

            var dev = TorchRuntime.Initialize(parse.GetValue(device)!);
            if (options.Bf16 && dev.type != DeviceType.CUDA)
                throw new LoraException($"--bf16 needs a CUDA device (this run is on {dev.type.ToString().ToLowerInvariant()}); drop --bf16 to train in fp32.");
            torch.manual_seed(options.Seed);

            using var causalLm = CausalLM.FromPretrained(modelDir, options.Bf16 ? torch.ScalarType.BFloat16 : torch.ScalarType.Float32, dev);
            var tokenizer = HfTokenizer.Load(modelDir);
            LoraConfig? config = null;
            if (trainingMode != TrainingMode.Lora)
            {
                // The model's own weights train; nothing to inject.
            }
            else if (parse.GetValue(initAdapter) is { } init)
            {
                config = PeftAdapter.Load(causalLm, init, warnings: w => stderr.WriteLine($"warning: {w}"));
            }
            else
            {
                config = new LoraConfig
                {
                    R = parse.GetValue(r) ?? 8,
                    LoraAlpha = parse.GetValue(alpha) ?? 16,
                    LoraDropout = parse.GetValue(dropout) ?? 0.05,
                    TargetModules = TargetSpec.Parse(parse.GetValue(targets) ?? DefaultTargets(causalLm.Config.ModelType)),
                    BaseModelNameOrPath = Path.GetFullPath(modelDir),
                };
                LoraInjector.Inject(causalLm, config);
            }

            var dataOptions = new DataOptions
            {
                MaxLength = options.MaxLength,
                Template = parse.GetValue(template) is { } t ? PromptTemplate.Parse(t) : null,
            };
            var train = InstructionDataset.Load(parse.GetValue(data)!, tokenizer, dataOptions);
            if (train.Stats.Warning is { } warning)
                stderr.WriteLine($"warning: {parse.GetValue(data)}: {warning}");
            InstructionDataset? eval = null;
            if (parse.GetValue(evalData) is { } evalPath)
            {
                eval = InstructionDataset.Load(evalPath, tokenizer, dataOptions);
                if (eval.Stats.Warning is { } evalWarning)
                    stderr.WriteLine($"warning: {evalPath}: {evalWarning}");
            }

            using var trainer = new Trainer(causalLm, options, outDir, train.Examples, eval?.Examples, config, Collator.PadIdOf(tokenizer));
            var info = asJson ? stderr : stdout;
            info.WriteLine($"{causalLm.TrainableParametersSummary()}");
            info.WriteLine($"{train.Stats}; {trainer.TotalSteps} steps ({trainer.StepsPerEpoch} per epoch), warmup {trainer.Schedule.WarmupSteps}, device {dev.type.ToString().ToLowerInvariant()}");
            trainer.Message += m => info.WriteLine(m);

            var result = !asJson && ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive
                ? WithProgressBar(trainer, resumeFrom)
                : WithLogLines(trainer, resumeFrom, info);

            if (asJson)
            {
                var lastEval = result.LogHistory.LastOrDefault(e => e.IsEval);
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    final_loss = result.FinalLoss,
                    eval_loss = result.EvalLoss,
                    eval_perplexity = lastEval?.EvalPerplexity,
                    steps = result.GlobalStep,
                    output_dir = Path.GetFullPath(result.OutputDirectory),
                    adapter = trainingMode == TrainingMode.Lora ? new[] { PeftConfigFile.FileName, PeftAdapter.WeightsFileName }.Select(f => Path.GetFullPath(Path.Combine(result.OutputDirectory, f))) : null,
                    model = trainingMode == TrainingMode.Lora ? null : Path.GetFullPath(result.OutputDirectory),
                    checkpoints = result.Checkpoints.Select(Path.GetFullPath),
                    metrics = Path.GetFullPath(result.MetricsPath),
                    loss_curve = Path.GetFullPath(result.LossCurvePath),
                }));
            }
            else
            {
                var evalText = result.EvalLoss is { } el ? $", eval loss {el.ToString("F4", Inv)}" : string.Empty;
                stdout.WriteLine($"done: {result.GlobalStep} steps, final loss {result.FinalLoss.ToString("F4", Inv)}{evalText}");
                stdout.WriteLine(trainingMode == TrainingMode.Lora
                    ? $"adapter: {Path.GetFullPath(result.OutputDirectory)} ({PeftConfigFile.FileName}, {PeftAdapter.WeightsFileName})"
                    : $"model: {Path.GetFullPath(result.OutputDirectory)} (a Hugging Face checkpoint directory)");
                stdout.WriteLine($"metrics: {result.MetricsPath}; loss curve: {result.LossCurvePath}");
            }

            return 0;
        });
        return command;
    }

    /// <summary>PEFT's default targets for the model type (<c>TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING</c>).</summary>
    private static string DefaultTargets(string modelType) => modelType switch
    {
        "gpt2" => "c_attn",
        _ => "q_proj,v_proj",
    };

    private static TrainingResult WithLogLines(Trainer trainer, string? resumeFrom, TextWriter writer)
    {
        TrainingProgress? last = null;
        trainer.StepCompleted += p => last = p;
        trainer.Logged += e => writer.WriteLine(FormatLog(e, trainer.TotalSteps, last));
        return trainer.Train(resumeFrom);
    }

    private static TrainingResult WithProgressBar(Trainer trainer, string? resumeFrom)
    {
        TrainingResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: trainer.TotalSteps);
                trainer.StepCompleted += p =>
                {
                    task.Value = p.Step;
                    task.Description = $"step {p.Step}/{p.TotalSteps} loss {p.Loss.ToString("F4", Inv)} lr {p.LearningRate.ToString("0.00e+0", Inv)} {p.TokensPerSecond.ToString("F0", Inv)} tok/s";
                };
                trainer.Logged += e =>
                {
                    if (e.IsEval)
                        AnsiConsole.MarkupLine(Markup.Escape(FormatLog(e, trainer.TotalSteps, null)));
                };
                result = trainer.Train(resumeFrom);
                task.Value = trainer.TotalSteps;
            });
        return result!;
    }

    private static string FormatLog(TrainingLogEntry e, int total, TrainingProgress? progress)
    {
        var head = $"step {e.Step}/{total}  epoch {e.Epoch.ToString("F2", Inv)}";
        if (e.IsEval)
            return $"{head}  eval_loss {e.EvalLoss!.Value.ToString("F4", Inv)}  eval_perplexity {e.EvalPerplexity!.Value.ToString("F3", Inv)}";
        var eta = progress is null ? string.Empty : $"  eta {progress.Remaining:hh\\:mm\\:ss}";
        return $"{head}  loss {e.Loss!.Value.ToString("F4", Inv)}  lr {e.LearningRate!.Value.ToString("0.000e+0", Inv)}  grad_norm {e.GradNorm!.Value.ToString("F4", Inv)}  {e.TokensPerSecond!.Value.ToString("F0", Inv)} tok/s{eta}";
    }
}
