using System.CommandLine;
using System.Globalization;
using Lora.Data;
using Lora.Training;

namespace Lora.Cli.Commands;

/// <summary>
/// The trainer's settings that every training command shares (<c>lora train</c>, <c>reward</c>, <c>dpo</c>,
/// <c>ppo</c>, <c>grpo</c>) — transformers' <c>TrainingArguments</c> as the CLI spells them: the schedule, batch and
/// accumulation, clipping, sampling order, logging and evaluation, checkpoints and resume, seed, compute dtype,
/// gradient checkpointing, optimizer offload and <c>--report-to</c>. Declared, checked and mapped to
/// <see cref="TrainingOptions"/> here once; a command adds its own options and sets its own fields on the result.
/// </summary>
internal sealed class TrainerOptions
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public readonly Option<double> LearningRate;
    public readonly Option<double> WeightDecay = new("--weight-decay") { Description = "AdamW weight decay (not on biases and norm weights).", DefaultValueFactory = _ => 0.0 };
    public readonly Option<string> Scheduler = new("--scheduler") { Description = "constant, constant_with_warmup, linear or cosine.", DefaultValueFactory = _ => "linear" };
    public readonly Option<int?> WarmupSteps = new("--warmup-steps") { Description = "Linear warmup from 0 over N steps (default 0)." };
    public readonly Option<double?> WarmupRatio = new("--warmup-ratio") { Description = "Warmup over ceil(total steps × F) steps." };
    public readonly Option<double?> Epochs = new("--epochs") { Description = "Passes over the data (default 3)." };
    public readonly Option<int?> MaxSteps = new("--max-steps") { Description = "Optimizer steps to run (instead of --epochs)." };
    public readonly Option<int> BatchSize;
    public readonly Option<int> GradAccum = new("--grad-accum") { Description = "Micro-batches per optimizer step.", DefaultValueFactory = _ => 1 };
    public readonly Option<double> MaxGradNorm = new("--max-grad-norm") { Description = "Clip the global gradient norm (0 = off).", DefaultValueFactory = _ => 1.0 };
    public readonly Option<bool> NoShuffle = new("--no-shuffle") { Description = "Read the data in file order." };
    public readonly Option<bool> GroupByLength = new("--group-by-length") { Description = "Batch examples of similar length (transformers' group_by_length)." };
    public readonly Option<int> LoggingSteps = new("--logging-steps") { Description = "Log every N steps.", DefaultValueFactory = _ => 10 };
    public readonly Option<string?> EvalData = new("--eval-data") { Description = "Evaluation data (the formats of --data)." };
    public readonly Option<int?> EvalSteps = new("--eval-steps") { Description = "Evaluate every N steps (default: --logging-steps)." };
    public readonly Option<bool> EvalOnStart = new("--eval-on-start") { Description = "With --eval-data: evaluate before the first step, so the log starts at step 0 (default true; --eval-on-start false skips it).", DefaultValueFactory = _ => true };
    public readonly Option<bool> Overwrite = new("--overwrite") { Description = "Train into a non-empty --out (its old checkpoint-N directories and runs/ are removed); without it a fresh run refuses one." };
    public readonly Option<string[]> ReportTo = new("--report-to") { Description = "Where the log rows go besides the console: tensorboard (event files in OUT/runs), jsonl (OUT/metrics.jsonl), both (the default; also spelled all), or none. Comma-separated or repeated.", AllowMultipleArgumentsPerToken = true };
    public readonly Option<int> SaveSteps = new("--save-steps") { Description = "Write checkpoint-N every N steps (and at the end; 0 = none).", DefaultValueFactory = _ => 500 };
    public readonly Option<int?> SaveTotalLimit = new("--save-total-limit") { Description = "Keep only the newest K checkpoints." };
    public readonly Option<string?> Resume = new("--resume") { Description = "Resume from a checkpoint directory, or the latest checkpoint in --out.", Arity = ArgumentArity.ZeroOrOne };
    public readonly Option<int> Seed;
    public readonly Option<bool> Bf16 = new("--bf16") { Description = "Same as --dtype bf16." };
    public readonly Option<string> DType;
    public readonly Option<bool> Checkpointing = new("--gradient-checkpointing") { Description = "Recompute decoder layers in the backward pass (less memory)." };
    public readonly Option<bool> Offload = new("--optimizer-offload") { Description = "Keep AdamW's state (and fp32 copies of the trainable weights) in CPU memory; for GPU runs short of memory (bitsandbytes' paged optimizers' role)." };

    /// <param name="learningRate">The command's default peak rate.</param>
    /// <param name="learningRateNote">Said after the default in <c>--learning-rate</c>'s description (or null).</param>
    /// <param name="batchSize">The command's default micro-batch size.</param>
    /// <param name="batchUnit">What a micro-batch counts (<c>Examples</c>, <c>Units</c>).</param>
    /// <param name="seedUses">What <c>--seed</c> seeds.</param>
    /// <param name="dtypeNote">What stays fp32 besides the compute dtype, for <c>--dtype</c>'s description.</param>
    public TrainerOptions(double learningRate, string? learningRateNote, int batchSize, string batchUnit, string seedUses, string dtypeNote)
    {
        LearningRate = new Option<double>("--learning-rate") { Description = $"Peak learning rate (default {learningRate.ToString(Inv)}{(learningRateNote is null ? string.Empty : ", " + learningRateNote)}).", DefaultValueFactory = _ => learningRate };
        BatchSize = new Option<int>("--batch-size") { Description = $"{batchUnit} per micro-batch.", DefaultValueFactory = _ => batchSize };
        Seed = new Option<int>("--seed") { Description = $"Seed for {seedUses}.", DefaultValueFactory = _ => 42 };
        DType = new Option<string>("--dtype") { Description = $"Compute dtype of the base model: auto (bf16 on CUDA, fp32 on the CPU), bf16 or fp32. {dtypeNote}", DefaultValueFactory = _ => "auto" };
    }

    /// <summary>Every option, in the order <c>--help</c> lists them.</summary>
    public IEnumerable<Option> All =>
    [
        LearningRate, WeightDecay, Scheduler, WarmupSteps, WarmupRatio, Epochs, MaxSteps, BatchSize, GradAccum, MaxGradNorm, NoShuffle, GroupByLength,
        LoggingSteps, EvalData, EvalSteps, EvalOnStart, Overwrite, ReportTo, SaveSteps, SaveTotalLimit, Resume, Seed, Bf16, DType, Checkpointing, Offload,
    ];

    /// <summary>The conflicts among these options (checked before anything is loaded).</summary>
    /// <exception cref="LoraException">Two options contradict each other, or a value is not one of its choices.</exception>
    public void Check(ParseResult parse)
    {
        if (parse.GetValue(Epochs) is not null && parse.GetValue(MaxSteps) is not null)
            throw new LoraException("--epochs and --max-steps conflict: give one (--max-steps overrides epochs in transformers; here it is an error).");
        if (parse.GetValue(WarmupSteps) is not null && parse.GetValue(WarmupRatio) is not null)
            throw new LoraException("--warmup-steps and --warmup-ratio conflict: give one.");
        if (parse.GetValue(NoShuffle) && parse.GetValue(GroupByLength))
            throw new LoraException("--no-shuffle and --group-by-length conflict: give one.");
        if (parse.GetValue(EvalSteps) is not null && parse.GetValue(EvalData) is null)
            throw new LoraException("--eval-steps needs --eval-data FILE.");
        if (parse.GetValue(EvalData) is { } evalData && !File.Exists(evalData))
            throw new LoraException($"{evalData}: file not found.");
        var dtype = DTypeText(parse);
        if (dtype is not ("auto" or "bf16" or "bfloat16" or "fp32" or "float32"))
            throw new LoraException($"--dtype '{dtype}' is not one of auto, bf16, fp32 (fp16 training would need loss scaling).");
        if (parse.GetValue(Bf16) && dtype is "fp32" or "float32")
            throw new LoraException("--bf16 and --dtype fp32 contradict each other; give one.");
        _ = Reporters(parse); // its errors now, not after loading
    }

    /// <summary>The trainer's options these flags set (<see cref="Check"/> first); the command sets the rest (its
    /// <c>MaxLength</c>, packing, mode, data-parallel group) and validates.</summary>
    public TrainingOptions Read(ParseResult parse) => new()
    {
        WriteMetricsFile = Reporters(parse).Jsonl,
        LearningRate = parse.GetValue(LearningRate),
        WeightDecay = parse.GetValue(WeightDecay),
        Scheduler = LearningRateSchedule.ParseType(parse.GetValue(Scheduler)!),
        WarmupSteps = parse.GetValue(WarmupSteps) ?? 0,
        WarmupRatio = parse.GetValue(WarmupRatio),
        Epochs = parse.GetValue(Epochs) ?? 3,
        MaxSteps = parse.GetValue(MaxSteps) ?? -1,
        BatchSize = parse.GetValue(BatchSize),
        EvalBatchSize = parse.GetValue(BatchSize),
        GradientAccumulationSteps = parse.GetValue(GradAccum),
        MaxGradNorm = parse.GetValue(MaxGradNorm),
        Seed = parse.GetValue(Seed),
        Sampling = parse.GetValue(NoShuffle) ? SamplingStrategy.Sequential : parse.GetValue(GroupByLength) ? SamplingStrategy.GroupByLength : SamplingStrategy.Random,
        LoggingSteps = parse.GetValue(LoggingSteps),
        EvalSteps = parse.GetValue(EvalSteps),
        EvalOnStart = parse.GetValue(EvalOnStart) && parse.GetValue(EvalData) is not null,
        OverwriteOutputDirectory = parse.GetValue(Overwrite),
        SaveSteps = parse.GetValue(SaveSteps),
        SaveTotalLimit = parse.GetValue(SaveTotalLimit),
        Bf16 = parse.GetValue(Bf16) || DTypeText(parse) is "bf16" or "bfloat16",
        GradientCheckpointing = parse.GetValue(Checkpointing),
        OptimizerOffload = parse.GetValue(Offload),
    };

    /// <summary><c>--resume</c>: the checkpoint to resume from (the given directory, or the latest in
    /// <paramref name="outDir"/>), or null for a fresh run.</summary>
    /// <exception cref="LoraException">There is no such checkpoint.</exception>
    public string? ResumeFrom(ParseResult parse, string outDir)
    {
        if (parse.GetResult(Resume) is null)
            return null;
        var from = parse.GetValue(Resume) ?? TrainingCheckpoints.Latest(outDir)
            ?? throw new LoraException($"{outDir}: --resume found no checkpoint-N directory to resume from.");
        return Directory.Exists(from) ? from : throw new LoraException($"{from}: checkpoint directory not found.");
    }

    /// <summary><c>--dtype auto</c>: bf16 on CUDA, fp32 on the CPU (decided once the device is known).</summary>
    public bool DTypeIsAuto(ParseResult parse) => DTypeText(parse) == "auto";

    /// <summary><c>--report-to</c> (transformers' <c>report_to</c>): which of TensorBoard and metrics.jsonl get the rows.</summary>
    /// <exception cref="LoraException">An unknown reporter, or <c>all</c>/<c>none</c> combined with others.</exception>
    public (bool TensorBoard, bool Jsonl) Reporters(ParseResult parse)
    {
        var names = (parse.GetValue(ReportTo) ?? []).SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).Select(v => v.ToLowerInvariant()).ToList();
        if (names.Count == 0 || names.Contains("all"))
            return names.Count <= 1 ? (true, true) : throw new LoraException("--report-to all already names every reporter; give it alone.");
        if (names.Contains("none"))
            return names.Count == 1 ? (false, false) : throw new LoraException("--report-to none cannot be combined with other reporters.");
        var unknown = names.FirstOrDefault(n => n is not ("tensorboard" or "jsonl"));
        if (unknown is not null)
            throw new LoraException($"--report-to '{unknown}' is not one of tensorboard, jsonl, all, none.");
        return (names.Contains("tensorboard"), names.Contains("jsonl"));
    }

    private string DTypeText(ParseResult parse) => parse.GetValue(DType)!.ToLowerInvariant();
}
