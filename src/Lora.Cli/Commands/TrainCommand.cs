using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Lora.Backend;
using Lora.Data;
using Lora.Distributed;
using Lora.Models;
using Lora.Peft;
using Lora.Quantization;
using Lora.Tokenization;
using Lora.Training;
using Lora.Tuners.IA3;
using Lora.Tuners.LoRA;
using Spectre.Console;
using TorchSharp;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora train</c>: instruction tuning of a Hugging Face model on an Alpaca/chat/text (or pre-tokenised) file with
/// the <see cref="Trainer"/> — a PEFT adapter (<c>--method lora|dora|ia3|prefix|ptuning-v2|prompt|ptuning|adapter</c>,
/// the last five through <see cref="MethodOptions"/>) or the model's own weights
/// (<c>--mode full|top-layers</c>); writes the adapter (or model), <c>checkpoint-N</c> directories,
/// <c>metrics.jsonl</c> and <c>loss.svg</c> to <c>--out</c>. See docs/training.md.
/// </summary>
internal static class TrainCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var data = new Option<string>("--data") { Description = "Training data: Alpaca JSON/JSONL, chat messages JSONL, or plain text.", Required = true };
        var output = new Option<string>("--out") { Description = "Output directory (adapter, checkpoints, metrics.jsonl, loss.svg).", Required = true };
        var initAdapter = new Option<string?>("--init-adapter") { Description = "Start from this PEFT adapter (any method; its config is used)." };
        var method = new Option<string>("--method") { Description = "PEFT method: lora, dora (LoRA with use_dora), ia3, prefix, ptuning-v2, prompt, ptuning or adapter (docs/methods.md).", DefaultValueFactory = _ => "lora" };
        var methodOptions = new MethodOptions();
        var feedForward = new Option<string?>("--feedforward") { Description = "IA3: the targets whose input is scaled (names or a regex like --targets; default: PEFT's for the model type)." };
        var r = new Option<int?>("--r") { Description = "LoRA rank (default 8)." };
        var alpha = new Option<double?>("--alpha") { Description = "LoRA alpha (default 16)." };
        var targets = new Option<string?>("--targets") { Description = "Layers to adapt: names (q_proj,v_proj), a regex on leaf or path, or all-linear (default: PEFT's for the model type and method)." };
        var dropout = new Option<double?>("--lora-dropout") { Description = "Dropout on the adapter input (default 0.05)." };
        var template = new Option<string?>("--template") { Description = "Prompt template: alpaca, llama2, chatml, model (the model's own chat template, as apply_chat_template renders it), or a custom template string (default: by record format)." };
        var maxLength = new Option<int>("--max-length") { Description = "Examples are cut to this many tokens; packed rows have this length.", DefaultValueFactory = _ => 1024 };
        var packing = new Option<bool>("--packing") { Description = "Pack examples into rows of --max-length tokens (attention stays inside each example)." };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var quantize = new QuantizeOptions();
        var trainerOptions = new TrainerOptions(2e-4, null, 8, "Examples", "adapter init, dropout and data order",
            "Trainable weights and the optimizer state stay fp32 (master weights in full and top-layer modes).");
        var mode = new Option<string>("--mode") { Description = "peft (an adapter of --method, the default; also spelled lora), full (every weight) or top-layers (the last --top-layers blocks and the final norm).", DefaultValueFactory = _ => "peft" };
        var topLayers = new Option<int>("--top-layers") { Description = "For --mode top-layers: how many of the last decoder blocks train.", DefaultValueFactory = _ => 2 };
        var command = new Command("train", "Fine-tune a model on instruction data: a LoRA adapter (default), or all / the top layers' weights.")
        {
            mode, method, topLayers, model, data, output, initAdapter, r, alpha, targets, dropout, feedForward, template, maxLength, packing, device, json,
        };
        foreach (var option in trainerOptions.All)
            command.Options.Add(option);
        foreach (var option in quantize.All)
            command.Options.Add(option);
        foreach (var option in methodOptions.All)
            command.Options.Add(option);
        var distributed = new DistributedOptions();
        foreach (var option in distributed.All)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            var asJson = parse.GetValue(json);
            var outDir = parse.GetValue(output)!;
            var modelDir = parse.GetValue(model)!;

            // Conflicts first: nothing is loaded for a command line that cannot run.
            var trainingMode = parse.GetValue(mode)!.ToLowerInvariant() switch
            {
                "peft" or "lora" => TrainingMode.Peft,
                "full" => TrainingMode.Full,
                "top-layers" => TrainingMode.TopLayers,
                var other => throw new LoraException($"--mode '{other}' is not one of peft, full, top-layers."),
            };
            var methodName = parse.GetValue(method)!.ToLowerInvariant();
            if (!MethodOptions.Names.Contains(methodName))
                throw new LoraException($"--method '{parse.GetValue(method)}' is not one of {string.Join(", ", MethodOptions.Names)}.");
            var loraOptions = parse.GetValue(r) is not null || parse.GetValue(alpha) is not null || parse.GetValue(dropout) is not null;
            if (trainingMode != TrainingMode.Peft && (parse.GetValue(initAdapter) is not null || loraOptions || parse.GetValue(targets) is not null || parse.GetValue(feedForward) is not null || parse.GetResult(method) is { Implicit: false } || methodOptions.Given(parse)))
                throw new LoraException($"--mode {parse.GetValue(mode)} trains the model's own weights: drop the adapter options (--method, --init-adapter, --r, --alpha, --targets, --lora-dropout, --feedforward).");
            if (methodName is not ("lora" or "dora") && loraOptions)
                throw new LoraException($"--method {methodName} has no rank, alpha or dropout: drop --r, --alpha and --lora-dropout.");
            if (MethodOptions.Builds(methodName) && parse.GetValue(targets) is not null)
                throw new LoraException($"--method {methodName} chooses where it acts itself ({(methodName == "adapter" ? "--placement" : "virtual tokens, no layers")}): drop --targets.");
            methodOptions.Check(parse, methodName, parse.GetValue(packing), parse.GetValue(trainerOptions.Checkpointing));
            if (methodName != "ia3" && parse.GetValue(feedForward) is not null)
                throw new LoraException("--feedforward is an IA3 option: add --method ia3 or drop it.");
            trainerOptions.Check(parse);
            if (parse.GetValue(initAdapter) is not null && (loraOptions || parse.GetValue(targets) is not null || parse.GetValue(feedForward) is not null || parse.GetResult(method) is { Implicit: false } || methodOptions.Given(parse)))
                throw new LoraException("--init-adapter takes the method, targets and its other settings from its adapter_config.json; drop --method/--r/--alpha/--targets/--lora-dropout/--feedforward.");
            if (!File.Exists(parse.GetValue(data)))
                throw new LoraException($"{parse.GetValue(data)}: file not found.");
            var resumeFrom = trainerOptions.ResumeFrom(parse, outDir);
            var (toTensorBoard, _) = trainerOptions.Reporters(parse);
            var options = trainerOptions.Read(parse) with
            {
                Packing = parse.GetValue(packing),
                MaxLength = parse.GetValue(maxLength),
                Mode = trainingMode,
                TopLayers = parse.GetValue(topLayers),
            };
            options.Validate();
            var quantization = quantize.Read(parse, parse.GetValue(device)!);
            if (quantization is not null && trainingMode != TrainingMode.Peft)
                throw new LoraException($"--quantize loads a frozen {quantization.Type.Name()} base, which trains through an adapter only: drop --mode {parse.GetValue(mode)} or --quantize.");
            if (quantization is not null && parse.GetValue(initAdapter) is { } initDir && PeftConfigFile.Read(initDir) is TunerConfig { ModulesToSave: { Count: > 0 } saved })
                quantization = quantization.Skipping(saved); // trained in full: they stay dense
            // Under mpirun every rank runs this command; rank 0 alone prints and writes (errors are printed by all).
            var group = distributed.Join(parse);
            if (group is { IsRoot: false })
            {
                stdout = TextWriter.Null;
                stderr = TextWriter.Null;
            }

            options = options with { DataParallel = group };
            if (resumeFrom is null && group is not { IsRoot: false })
                Trainer.PrepareOutputDirectory(outDir, options.OverwriteOutputDirectory); // before the model loads

            var dev = DistributedOptions.DeviceFor(group, parse.GetValue(device)!,
                TorchRuntime.Initialize(parse.GetValue(device)!, notice => stderr.WriteLine($"warning: {notice}")));
            if (trainerOptions.DTypeIsAuto(parse) && dev.type == DeviceType.CUDA)
                options = options with { Bf16 = true }; // bf16 by default on the GPU (4–5× the fp32 matmul rate)
            if (options.Bf16 && dev.type != DeviceType.CUDA)
                stderr.WriteLine("warning: bf16 on the CPU runs libtorch's bf16 CPU kernels, several times slower than fp32 there; --dtype fp32 (the CPU default) is faster.");
            torch.manual_seed(options.Seed);

            using var causalLm = CausalLM.FromPretrained(modelDir, options.Bf16 ? torch.ScalarType.BFloat16 : torch.ScalarType.Float32, dev, quantization);
            PeftConfig? config = null;
            if (trainingMode != TrainingMode.Peft)
            {
                // The model's own weights train; nothing to inject.
            }
            else if (parse.GetValue(initAdapter) is { } init)
            {
                config = PeftAdapter.Load(causalLm, init, warnings: w => stderr.WriteLine($"warning: {w}"));
            }
            else
            {
                config = methodOptions.Config(parse, methodName, Path.GetFullPath(modelDir))
                    ?? NewAdapterConfig(methodName, causalLm, parse.GetValue(targets), parse.GetValue(feedForward),
                        parse.GetValue(r), parse.GetValue(alpha), parse.GetValue(dropout), Path.GetFullPath(modelDir));
                TargetSpec.WarnUnmatched(config, PeftInjector.Inject(causalLm, config), stderr);
            }

            // Pre-tokenised data needs no tokenizer (the model directory may have none).
            var tokenizer = new Lazy<HfTokenizer>(() => HfTokenizer.Load(modelDir));
            var templateText = parse.GetValue(template);
            var train = CommandData.Load(parse.GetValue(data)!, modelDir, templateText, options.MaxLength, tokenizer);
            if (train.Warning is { } warning)
                stderr.WriteLine($"warning: {parse.GetValue(data)}: {warning}");
            IReadOnlyList<TokenizedExample>? evalExamples = null;
            if (parse.GetValue(trainerOptions.EvalData) is { } evalPath)
            {
                var eval = CommandData.Load(evalPath, modelDir, templateText, options.MaxLength, tokenizer);
                if (eval.Warning is { } evalWarning)
                    stderr.WriteLine($"warning: {evalPath}: {evalWarning}");
                evalExamples = eval.Examples;
            }

            var padId = tokenizer.IsValueCreated ? Collator.PadIdOf(tokenizer.Value) : causalLm.Config.PadTokenId ?? causalLm.Config.EosTokenIds.FirstOrDefault();
            using var trainer = new Trainer(causalLm, options, outDir, train.Examples, evalExamples, config, padId);
            var info = asJson ? stderr : stdout;
            if (group is not null)
            {
                group.PrepareFor(dev, group.Backend); // the trainer does it too; here for the line below
                info.WriteLine(DistributedOptions.Describe(group, options.BatchSize, options.GradientAccumulationSteps, dev));
            }

            if (QuantizeOptions.Describe(causalLm) is { } stored)
                info.WriteLine(stored);
            info.WriteLine($"{causalLm.TrainableParametersSummary()}");
            info.WriteLine($"{train.Summary}; {trainer.TotalSteps} steps ({trainer.StepsPerEpoch} per epoch), warmup {trainer.Schedule.WarmupSteps}, device {dev.type.ToString().ToLowerInvariant()}");
            trainer.Message += m => info.WriteLine(m);
            var tensorBoard = toTensorBoard && trainer.IsRoot ? new TensorBoardLogger(Path.Combine(outDir, TensorBoardLogger.DefaultDirectoryName)) : null;
            tensorBoard?.Attach(trainer);

            var result = !asJson && ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive
                ? WithProgressBar(trainer, resumeFrom)
                : WithLogLines(trainer, resumeFrom, info);

            var trainRows = result.LogHistory.Where(e => e.Loss is not null).ToList();
            if (asJson)
            {
                var lastEval = result.LogHistory.LastOrDefault(e => e.IsEval);
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    final_loss = result.FinalLoss,
                    train_loss = trainRows.LastOrDefault()?.Loss,
                    eval_loss = result.EvalLoss,
                    eval_perplexity = lastEval?.EvalPerplexity,
                    steps = result.GlobalStep,
                    output_dir = Path.GetFullPath(result.OutputDirectory),
                    adapter = trainingMode == TrainingMode.Peft ? new[] { PeftConfigFile.FileName, PeftMethods.For(config!).WeightsFileName }.Select(f => Path.GetFullPath(Path.Combine(result.OutputDirectory, f))) : null,
                    model = trainingMode == TrainingMode.Peft ? null : Path.GetFullPath(result.OutputDirectory),
                    checkpoints = result.Checkpoints.Select(Path.GetFullPath),
                    metrics = result.MetricsPath is { } metricsPath ? Path.GetFullPath(metricsPath) : null,
                    loss_curve = Path.GetFullPath(result.LossCurvePath),
                    tensorboard = tensorBoard is null ? null : Path.GetFullPath(tensorBoard.LogDirectory),
                }));
            }
            else
            {
                // The loss printed is a row of metrics.jsonl (the mean over the last logging window), not a lone step's.
                var evalText = result.EvalLoss is { } el ? $", eval loss {el.ToString("F4", Inv)}" : string.Empty;
                var lossText = trainRows.Count == 0 ? $"last step's loss {result.FinalLoss.ToString("F4", Inv)}"
                    : $"train loss {trainRows[^1].Loss!.Value.ToString("F4", Inv)} (mean of steps {(trainRows.Count > 1 ? trainRows[^2].Step + 1 : 1)}-{trainRows[^1].Step}, the last train row of metrics.jsonl)";
                stdout.WriteLine($"done: {result.GlobalStep} steps, {lossText}{evalText}");
                stdout.WriteLine(trainingMode == TrainingMode.Peft
                    ? $"adapter: {Path.GetFullPath(result.OutputDirectory)} ({string.Join(", ", AdapterFiles(result.OutputDirectory, config!))})"
                    : $"model: {Path.GetFullPath(result.OutputDirectory)} (a Hugging Face checkpoint directory)");
                stdout.WriteLine($"metrics: {result.MetricsPath ?? "not written (--report-to)"}; loss curve: {result.LossCurvePath}; TensorBoard: {tensorBoard?.LogDirectory ?? "not written (--report-to)"}");
            }

            return 0;
        });
        return command;
    }

    /// <summary>The adapter config of <c>--method</c>: the given targets, else PEFT's defaults for the model's family.</summary>
    private static TunerConfig NewAdapterConfig(string method, CausalLM model, string? targets, string? feedForward, int? r, double? alpha, double? dropout, string baseModel)
    {
        var peftType = method == "ia3" ? Ia3Method.PeftTypeName : LoraMethod.PeftTypeName;
        var targetModules = targets is not null ? TargetSpec.Parse(targets)
            : model.Family?.DefaultTargetModules.GetValueOrDefault(peftType) is { } defaults ? TargetModules.FromNames(defaults)
            : throw new LoraException($"model_type '{model.Config.ModelType}' has no default targets for {method}: give --targets.");
        if (method == "ia3")
        {
            return new Ia3Config
            {
                TargetModules = targetModules,
                FeedforwardModules = feedForward is null ? null : TargetSpec.Parse(feedForward),
                BaseModelNameOrPath = baseModel,
            };
        }

        return new LoraConfig
        {
            R = r ?? 8,
            LoraAlpha = alpha ?? 16,
            LoraDropout = dropout ?? 0.05,
            TargetModules = targetModules,
            UseDora = method == "dora",
            BaseModelNameOrPath = baseModel,
        };
    }

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

    /// <summary>The adapter files a run wrote: the config, the weights and, for prefix tuning / P-tuning, the whole
    /// prompt encoder (<see cref="PromptLearningFiles.EncoderStateFileName"/>).</summary>
    private static IEnumerable<string> AdapterFiles(string directory, PeftConfig config) =>
        new[] { PeftConfigFile.FileName, PeftMethods.For(config).WeightsFileName, PromptLearningFiles.EncoderStateFileName }
            .Distinct()
            .Where(f => f != PromptLearningFiles.EncoderStateFileName || File.Exists(Path.Combine(directory, f)));
}
