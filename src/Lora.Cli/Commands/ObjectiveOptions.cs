using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Lora.Backend;
using Lora.Data;
using Lora.Models;
using Lora.Peft;
using Lora.Quantization;
using Lora.Tokenization;
using Lora.Training;
using Lora.Training.Objectives;
using Lora.Tuners.IA3;
using Lora.Tuners.LoRA;
using TorchSharp;

namespace Lora.Cli.Commands;

/// <summary>
/// The options every alignment command (<c>lora reward</c>, <c>dpo</c>, <c>ppo</c>, <c>grpo</c>) shares with
/// <c>lora train</c>, spelled and checked the same way: the model and its adapter (<c>--method</c>, <c>--init-adapter</c>,
/// <c>--r</c>, …, <c>--quantize</c>), the trainer's schedule, accumulation, clipping, checkpoints, resume and logging,
/// and <c>--json</c>. A command adds its own options, builds its objective, and hands the trainer to
/// <see cref="Run"/>.
/// </summary>
internal sealed class ObjectiveOptions
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public readonly Option<string> Model = CommonOptions.Model();
    public readonly Option<string> Data;
    public readonly Option<string> Out = new("--out") { Description = "Output directory (adapter, checkpoints, metrics.jsonl, loss.svg).", Required = true };
    public readonly Option<string?> InitAdapter = new("--init-adapter") { Description = "Start from this PEFT adapter (any method; its config is used); the reference is a frozen copy of it." };
    public readonly Option<string> Method = new("--method") { Description = "PEFT method: lora, dora (LoRA with use_dora) or ia3.", DefaultValueFactory = _ => "lora" };
    public readonly Option<int?> R = new("--r") { Description = "LoRA rank (default 8)." };
    public readonly Option<double?> Alpha = new("--alpha") { Description = "LoRA alpha (default 16)." };
    public readonly Option<string?> Targets = new("--targets") { Description = "Layers to adapt: names (q_proj,v_proj), a regex on leaf or path, or all-linear (default: PEFT's for the model type and method)." };
    public readonly Option<double?> LoraDropout = new("--lora-dropout") { Description = "Dropout on the adapter input (written to adapter_config.json; see the command's dropout note)." };
    public readonly Option<string?> FeedForward = new("--feedforward") { Description = "IA3: the targets whose input is scaled (default: PEFT's for the model type)." };
    public readonly Option<string?> Template = new("--template") { Description = "Chat template for conversational data: chatml (default) or llama2." };
    public readonly Option<int> MaxLength = new("--max-length") { Description = "TRL's max_length (tokens).", DefaultValueFactory = _ => 1024 };
    public readonly Option<string> Device = CommonOptions.Device();
    public readonly Option<bool> Json = CommonOptions.Json();
    public readonly QuantizeOptions Quantize = new();

    /// <summary>The trainer's settings, shared with <c>lora train</c>.</summary>
    public readonly TrainerOptions Training;

    /// <summary><c>--eval-data</c> (one of <see cref="Training"/>'s).</summary>
    public Option<string?> EvalData => Training.EvalData;

    /// <param name="dataDescription">What <c>--data</c> holds for this command.</param>
    /// <param name="learningRate">The command's default rate (TRL's config default).</param>
    /// <param name="batchSize">The command's default micro-batch size.</param>
    public ObjectiveOptions(string dataDescription, double learningRate, int batchSize = 8)
    {
        Data = new Option<string>("--data") { Description = dataDescription, Required = true };
        Training = new TrainerOptions(learningRate, "TRL's; LoRA usually wants 10-100x more", batchSize, "Units",
            "adapter init, dropout, data order and sampling", "A reference or reward model runs in it too; adapters, heads and the optimizer state stay fp32.");
    }

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Model, Data, Out, InitAdapter, Method, R, Alpha, Targets, LoraDropout, FeedForward, Template, MaxLength, Device, Json })
            command.Options.Add(option);
        foreach (var option in Training.All)
            command.Options.Add(option);
        foreach (var option in Quantize.All)
            command.Options.Add(option);
        foreach (var option in Distributed.All)
            command.Options.Add(option);
    }

    /// <summary><c>--dist-timeout</c>, <c>--dist-backend</c>: under mpirun these commands train data-parallel.</summary>
    public readonly DistributedOptions Distributed = new();

    /// <summary>What a command line asks for, checked before anything is loaded.</summary>
    public sealed record Request(TrainingOptions Training, QuantizationConfig? Quantization, string? ResumeFrom, string ModelDir, string OutDir, bool Json, string Method, bool TensorBoard);

    /// <summary>Checks the options (conflicts first, so nothing is loaded for a command line that cannot run) and
    /// builds the trainer's options.</summary>
    public Request Read(ParseResult parse)
    {
        var methodName = parse.GetValue(Method)!.ToLowerInvariant();
        if (methodName is not ("lora" or "dora" or "ia3"))
            throw new LoraException($"--method '{parse.GetValue(Method)}' is not one of lora, dora, ia3.");
        var loraOptions = parse.GetValue(R) is not null || parse.GetValue(Alpha) is not null || parse.GetValue(LoraDropout) is not null;
        if (methodName == "ia3" && loraOptions)
            throw new LoraException("--method ia3 has no rank, alpha or dropout: drop --r, --alpha and --lora-dropout.");
        if (methodName != "ia3" && parse.GetValue(FeedForward) is not null)
            throw new LoraException("--feedforward is an IA3 option: add --method ia3 or drop it.");
        if (parse.GetValue(InitAdapter) is not null && (loraOptions || parse.GetValue(Targets) is not null || parse.GetValue(FeedForward) is not null || parse.GetResult(Method) is { Implicit: false }))
            throw new LoraException("--init-adapter takes the method, targets and its other settings from its adapter_config.json; drop --method/--r/--alpha/--targets/--lora-dropout/--feedforward.");
        Training.Check(parse);
        if (!File.Exists(parse.GetValue(Data)))
            throw new LoraException($"{parse.GetValue(Data)}: file not found.");
        if (parse.GetValue(InitAdapter) is { } init && !Directory.Exists(init))
            throw new LoraException($"{init}: adapter directory not found.");
        var outDir = parse.GetValue(Out)!;
        var resumeFrom = Training.ResumeFrom(parse, outDir);
        var options = Training.Read(parse) with { MaxLength = parse.GetValue(MaxLength) };
        options.Validate();
        var quantization = Quantize.Read(parse, parse.GetValue(Device)!);
        // Under mpirun every rank runs the command; rank 0 alone prints and writes (docs/distributed.md).
        options = options with { DataParallel = Distributed.Join(parse) };
        if (resumeFrom is null && options.DataParallel is not { IsRoot: false })
            Trainer.PrepareOutputDirectory(outDir, options.OverwriteOutputDirectory); // before anything loads
        return new Request(options, quantization, resumeFrom, parse.GetValue(Model)!, outDir, parse.GetValue(Json), methodName, Training.Reporters(parse).TensorBoard);
    }

    /// <summary>The chat template for conversational data, or null (ChatML).</summary>
    public PromptTemplate? ChatTemplate(ParseResult parse) => parse.GetValue(Template) is { } t ? PromptTemplate.Parse(t) : null;

    /// <summary>Starts the backend on <c>--device</c> and seeds torch; <c>--dtype auto</c> becomes bf16 on CUDA
    /// (<paramref name="request"/>'s training options then say so), as for <c>lora train</c>.</summary>
    public torch.Device StartDevice(ParseResult parse, ref Request request, TextWriter stderr)
    {
        var dev = DistributedOptions.DeviceFor(request.Training.DataParallel, parse.GetValue(Device)!,
            TorchRuntime.Initialize(parse.GetValue(Device)!, notice => stderr.WriteLine($"warning: {notice}")));
        if (Training.DTypeIsAuto(parse) && dev.type == DeviceType.CUDA && !request.Training.Bf16)
            request = request with { Training = request.Training with { Bf16 = true } }; // bf16 by default on the GPU
        if (request.Training.Bf16 && dev.type != DeviceType.CUDA)
            stderr.WriteLine("warning: bf16 on the CPU runs libtorch's bf16 CPU kernels, several times slower than fp32 there; --dtype fp32 (the CPU default) is faster.");
        torch.manual_seed(request.Training.Seed);
        return dev;
    }

    /// <summary>
    /// Loads the policy: the base (quantized with <c>--quantize</c>; <paramref name="keepDense"/> modules stay dense),
    /// <paramref name="beforeAdapter"/> (e.g. a head), then the adapter: <c>--init-adapter</c> (and, with
    /// <paramref name="referenceCopy"/>, a frozen copy of it as adapter <c>ref</c>, TRL's reference for a re-trained
    /// adapter) or a new one of <c>--method</c>, whose config <paramref name="configure"/> may complete.
    /// </summary>
    public (CausalLM Model, PeftConfig Config, bool HasReferenceCopy) LoadPolicy(ParseResult parse, Request request, torch.Device device, TextWriter stderr,
        Action<CausalLM>? beforeAdapter = null, Func<TunerConfig, TunerConfig>? configure = null, bool referenceCopy = false, IReadOnlyList<string>? keepDense = null)
    {
        var quantization = request.Quantization;
        if (quantization is not null && keepDense is { Count: > 0 })
            quantization = quantization.Skipping(keepDense);
        var init = parse.GetValue(InitAdapter);
        if (quantization is not null && init is not null && PeftConfigFile.Read(init) is TunerConfig { ModulesToSave: { Count: > 0 } saved })
            quantization = quantization.Skipping(saved);
        var model = CausalLM.FromPretrained(request.ModelDir, request.Training.Bf16 ? torch.ScalarType.BFloat16 : torch.ScalarType.Float32, device, quantization);
        try
        {
            beforeAdapter?.Invoke(model);
            PeftConfig config;
            var hasCopy = false;
            if (init is not null)
            {
                config = PeftAdapter.Load(model, init, warnings: w => stderr.WriteLine($"warning: {w}"));
                if (config is TunerConfig tuner && configure is not null)
                    config = configure(tuner);
                if (referenceCopy)
                {
                    PeftAdapter.Load(model, init, "ref", w => stderr.WriteLine($"warning: {w}"));
                    model.SetActiveAdapters(PeftAdapter.DefaultName);
                    hasCopy = true;
                }
            }
            else
            {
                TunerConfig fresh = NewAdapterConfig(request.Method, model, parse.GetValue(Targets), parse.GetValue(FeedForward), parse.GetValue(R), parse.GetValue(Alpha),
                    parse.GetValue(LoraDropout), Path.GetFullPath(request.ModelDir));
                config = configure?.Invoke(fresh) ?? fresh;
                TargetSpec.WarnUnmatched(config, PeftInjector.Inject(model, config), stderr);
            }

            return (model, config, hasCopy);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The pad id: the tokenizer's (pad, else eos) when it is loaded, else the model's config.</summary>
    public static int PadId(Lazy<HfTokenizer> tokenizer, CausalLM model) =>
        tokenizer.IsValueCreated ? Collator.PadIdOf(tokenizer.Value) : model.Config.PadTokenId ?? model.Config.EosTokenIds.FirstOrDefault();

    /// <summary>Runs <paramref name="trainer"/> with log lines (on stderr with <c>--json</c>), then prints the result:
    /// one JSON object with <c>--json</c> (<paramref name="extra"/> merged in), else a summary.</summary>
    public static TrainingResult Run(Trainer trainer, CausalLM model, Request request, TextWriter stdout, TextWriter stderr, string summary,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        if (!trainer.IsRoot)
            (stdout, stderr) = (TextWriter.Null, TextWriter.Null); // ranks other than 0 of an mpirun job stay quiet
        var info = request.Json ? stderr : stdout;
        if (request.Training.DataParallel is { } group)
        {
            group.PrepareFor(model.parameters().First().device, group.Backend); // the trainer does it too; here for the line below
            info.WriteLine(DistributedOptions.Describe(group, request.Training.BatchSize, request.Training.GradientAccumulationSteps, model.parameters().First().device));
        }

        if (QuantizeOptions.Describe(model) is { } stored)
            info.WriteLine(stored);
        info.WriteLine(model.TrainableParametersSummary());
        info.WriteLine($"{summary}; {trainer.TotalSteps} steps ({trainer.StepsPerEpoch} per epoch), warmup {trainer.Schedule.WarmupSteps}, device {model.parameters().First().device.type.ToString().ToLowerInvariant()}");
        trainer.Message += m => info.WriteLine(m);
        trainer.Logged += e => info.WriteLine(FormatLog(e, trainer.TotalSteps));
        var tensorBoard = request.TensorBoard && trainer.IsRoot ? new TensorBoardLogger(Path.Combine(request.OutDir, TensorBoardLogger.DefaultDirectoryName)) : null;
        tensorBoard?.Attach(trainer);
        var result = trainer.Train(request.ResumeFrom);

        var lastTrain = result.LogHistory.LastOrDefault(e => !e.IsEval);
        var lastEval = result.LogHistory.LastOrDefault(e => e.IsEval);
        if (request.Json)
        {
            var json = new Dictionary<string, object?>
            {
                ["final_loss"] = result.FinalLoss,
                ["train_loss"] = lastTrain?.Loss,
                ["eval_loss"] = result.EvalLoss,
                ["steps"] = result.GlobalStep,
                ["output_dir"] = Path.GetFullPath(result.OutputDirectory),
                ["adapter"] = new[] { PeftConfigFile.FileName, PeftAdapter.WeightsFileName }.Select(f => Path.GetFullPath(Path.Combine(result.OutputDirectory, f))),
                ["checkpoints"] = result.Checkpoints.Select(Path.GetFullPath),
                ["metrics"] = result.MetricsPath is { } metricsPath ? Path.GetFullPath(metricsPath) : null,
                ["loss_curve"] = Path.GetFullPath(result.LossCurvePath),
                ["tensorboard"] = tensorBoard is null ? null : Path.GetFullPath(tensorBoard.LogDirectory),
                ["train_metrics"] = lastTrain?.Metrics,
                ["eval_metrics"] = lastEval?.Metrics,
            };
            foreach (var (key, value) in extra ?? new Dictionary<string, object?>())
                json[key] = value;
            stdout.WriteLine(JsonSerializer.Serialize(json));
        }
        else
        {
            var evalText = result.EvalLoss is { } el ? $", eval loss {el.ToString("F4", Inv)}" : string.Empty;
            // As lora train: the loss printed is a row of metrics.jsonl (the mean over the last logging window).
            var trainRows = result.LogHistory.Where(e => e.Loss is not null).ToList();
            var lossText = trainRows.Count == 0 ? $"last step's loss {result.FinalLoss.ToString("F4", Inv)}"
                : $"train loss {trainRows[^1].Loss!.Value.ToString("F4", Inv)} (mean of steps {(trainRows.Count > 1 ? trainRows[^2].Step + 1 : 1)}-{trainRows[^1].Step}, the last train row of metrics.jsonl)";
            stdout.WriteLine($"done: {result.GlobalStep} steps, {lossText}{evalText}");
            if (lastTrain?.Metrics is { Count: > 0 } m)
                stdout.WriteLine($"last logged: {Metrics(m)}");
            if (lastEval?.Metrics is { Count: > 0 } em)
                stdout.WriteLine($"last eval: {Metrics(em)}");
            stdout.WriteLine($"adapter: {Path.GetFullPath(result.OutputDirectory)} ({PeftConfigFile.FileName}, {PeftAdapter.WeightsFileName})");
            foreach (var (key, value) in extra ?? new Dictionary<string, object?>())
            {
                if (value is string path && (File.Exists(path) || Directory.Exists(path)))
                    stdout.WriteLine($"{key.Replace('_', ' ')}: {path}"); // what the command wrote besides (PPO's value head and critic)
            }
            stdout.WriteLine($"metrics: {result.MetricsPath ?? "not written (--report-to)"}; loss curve: {result.LossCurvePath}; TensorBoard: {tensorBoard?.LogDirectory ?? "not written (--report-to)"}");
        }

        return result;
    }

    private static string FormatLog(TrainingLogEntry e, int total)
    {
        var head = $"step {e.Step}/{total}  epoch {e.Epoch.ToString("F2", Inv)}";
        var metrics = e.Metrics is { Count: > 0 } m ? "  " + Metrics(m) : string.Empty;
        if (e.IsEval)
            return $"{head}  eval_loss {e.EvalLoss!.Value.ToString("F4", Inv)}{metrics}";
        return $"{head}  loss {e.Loss!.Value.ToString("F4", Inv)}  lr {e.LearningRate!.Value.ToString("0.000e+0", Inv)}  grad_norm {e.GradNorm!.Value.ToString("F4", Inv)}{metrics}";
    }

    private static string Metrics(IReadOnlyDictionary<string, object> metrics) =>
        string.Join("  ", metrics.Select(kv => $"{kv.Key} {(kv.Value is double d ? d.ToString("G5", Inv) : kv.Value)}"));

    /// <summary>The adapter config of <c>--method</c>: the given targets, else PEFT's defaults for the model's family
    /// (as <c>lora train</c>; LoRA's dropout defaults to 0 here: TRL disables dropout in these trainers).</summary>
    private static TunerConfig NewAdapterConfig(string method, CausalLM model, string? targets, string? feedForward, int? r, double? alpha, double? dropout, string baseModel)
    {
        var peftType = method == "ia3" ? Ia3Method.PeftTypeName : LoraMethod.PeftTypeName;
        var targetModules = targets is not null ? TargetSpec.Parse(targets)
            : model.Family?.DefaultTargetModules.GetValueOrDefault(peftType) is { } defaults ? TargetModules.FromNames(defaults)
            : throw new LoraException($"model_type '{model.Config.ModelType}' has no default targets for {method}: give --targets.");
        if (method == "ia3")
            return new Ia3Config { TargetModules = targetModules, FeedforwardModules = feedForward is null ? null : TargetSpec.Parse(feedForward), BaseModelNameOrPath = baseModel };
        return new LoraConfig
        {
            R = r ?? 8,
            LoraAlpha = alpha ?? 16,
            LoraDropout = dropout ?? 0,
            TargetModules = targetModules,
            UseDora = method == "dora",
            BaseModelNameOrPath = baseModel,
        };
    }
}
