using System.Text.Json.Serialization;
using Lora.Data;
using Lora.Distributed;

namespace Lora.Training;

/// <summary>
/// Hyper-parameters of a run. Names follow transformers' <c>TrainingArguments</c> (given in each comment with its
/// default there); defaults are transformers' unless the comment says otherwise.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary><c>learning_rate</c> (5e-5 in transformers; 2e-4 here, the common LoRA rate).</summary>
    public double LearningRate { get; init; } = 2e-4;

    /// <summary><c>weight_decay</c> (0): AdamW's decoupled decay, never applied to biases or norm weights.</summary>
    public double WeightDecay { get; init; }

    /// <summary><c>adam_beta1</c> (0.9).</summary>
    public double AdamBeta1 { get; init; } = 0.9;

    /// <summary><c>adam_beta2</c> (0.999).</summary>
    public double AdamBeta2 { get; init; } = 0.999;

    /// <summary><c>adam_epsilon</c> (1e-8).</summary>
    public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary><c>lr_scheduler_type</c> (linear).</summary>
    public SchedulerType Scheduler { get; init; } = SchedulerType.Linear;

    /// <summary><c>warmup_steps</c> as an int (0). Give this or <see cref="WarmupRatio"/>, not both.</summary>
    public int WarmupSteps { get; init; }

    /// <summary><c>warmup_ratio</c> (v5: a float <c>warmup_steps</c> &lt; 1): W = ceil(T · ratio). Null = not set.</summary>
    public double? WarmupRatio { get; init; }

    /// <summary><c>num_train_epochs</c> (3). Ignored when <see cref="MaxSteps"/> is set.</summary>
    public double Epochs { get; init; } = 3;

    /// <summary><c>max_steps</c> (-1 = from epochs): optimizer steps to run, cycling the data as needed.</summary>
    public int MaxSteps { get; init; } = -1;

    /// <summary><c>per_device_train_batch_size</c> (8): examples (or packed rows) per micro-batch.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary><c>per_device_eval_batch_size</c> (8).</summary>
    public int EvalBatchSize { get; init; } = 8;

    /// <summary><c>gradient_accumulation_steps</c> (1): micro-batches per optimizer step.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary><c>max_grad_norm</c> (1.0): clip the global L2 norm of the gradients to this; 0 = no clipping.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary><c>seed</c> (42): adapter init (when the trainer injects), dropout, and the data order.</summary>
    public int Seed { get; init; } = 42;

    /// <summary><c>train_sampling_strategy</c> ("random"); <see cref="SamplingStrategy.Sequential"/> = no shuffling.</summary>
    public SamplingStrategy Sampling { get; init; } = SamplingStrategy.Random;

    /// <summary><c>logging_steps</c> (500 in transformers; 10 here): log every N optimizer steps (and the last).</summary>
    public int LoggingSteps { get; init; } = 10;

    /// <summary><c>eval_steps</c> (defaults to logging_steps): evaluate every N steps when eval data is given; 0 = only at the end.</summary>
    public int? EvalSteps { get; init; }

    /// <summary><c>eval_on_start</c> (false): evaluate once before the first step, so the log starts with the
    /// untrained model's eval loss at step 0 (not on resume). <c>lora train</c> turns it on when it has eval data.</summary>
    public bool EvalOnStart { get; init; }

    /// <summary><c>overwrite_output_dir</c> (false): a fresh run (not a resume) refuses an output directory that is not
    /// empty, so a previous run is never silently mixed with this one. True: train into it anyway, after removing the
    /// previous run's <c>checkpoint-N</c> directories and its TensorBoard directory (<c>runs/</c>); the other files
    /// the trainer writes are replaced.</summary>
    public bool OverwriteOutputDirectory { get; init; }

    /// <summary>Whether the log rows also go to <c>metrics.jsonl</c> in the output directory (true; <c>lora train
    /// --report-to</c> without <c>jsonl</c> turns it off). They stay in <c>trainer_state.json</c>'s <c>log_history</c>,
    /// the <see cref="Trainer.Logged"/> event and the loss curve either way.</summary>
    public bool WriteMetricsFile { get; init; } = true;

    /// <summary><c>save_steps</c> (500): write <c>checkpoint-{step}</c> every N steps; 0 = no intermediate checkpoints.</summary>
    public int SaveSteps { get; init; } = 500;

    /// <summary><c>save_total_limit</c> (None): keep only the newest K checkpoints. Null = keep all.</summary>
    public int? SaveTotalLimit { get; init; }

    /// <summary>TRL's <c>packing</c> (false): concatenate examples into rows of <see cref="MaxLength"/> tokens.</summary>
    public bool Packing { get; init; }

    /// <summary>TRL's <c>max_length</c> (1024): the packed row length (examples are cut when they are tokenised).</summary>
    public int MaxLength { get; init; } = 1024;

    /// <summary><c>bf16</c> (false; the CLI's <c>--dtype auto</c> turns it on for CUDA): the base model is loaded in and
    /// computes in bfloat16; adapters, fp32 master copies of bf16 trainable weights (full and top-layer modes) and the
    /// optimizer state stay fp32. Runs on the CPU too (libtorch's bf16 CPU kernels: slow there, for tests).</summary>
    public bool Bf16 { get; init; }

    /// <summary><c>gradient_checkpointing</c> (false): recompute each decoder block in the backward pass.</summary>
    public bool GradientCheckpointing { get; init; }

    /// <summary>Keep the optimizer state (and an fp32 copy of the trainable parameters) on the CPU, where AdamW runs;
    /// the device holds only the model and its gradients. The substitute for bitsandbytes' paged optimizers
    /// (<c>optim="paged_adamw_32bit"</c>): TorchSharp has no unified memory. See docs/quantization.md.</summary>
    public bool OptimizerOffload { get; init; }

    /// <summary>What is trained (a PEFT adapter by default).</summary>
    public TrainingMode Mode { get; init; } = TrainingMode.Peft;

    /// <summary>For <see cref="TrainingMode.TopLayers"/>: how many of the last decoder blocks to train.</summary>
    public int TopLayers { get; init; } = 2;

    /// <summary>For <see cref="TrainingMode.Peft"/>: the adapter that trains (others stay frozen). A non-default name
    /// is saved in a subdirectory of that name, as PEFT does.</summary>
    public string AdapterName { get; init; } = Peft.PeftAdapter.DefaultName;

    /// <summary>Data-parallel training over the ranks of an <c>mpirun</c> job (<see cref="Distributed.DataParallel.FromEnvironment"/>);
    /// null = one process. The global batch is ranks × <see cref="BatchSize"/> × <see cref="GradientAccumulationSteps"/>;
    /// rank 0 alone logs and writes files. See docs/distributed.md. Not part of <c>training_args.json</c>.</summary>
    [JsonIgnore]
    public DataParallel? DataParallel { get; init; }

    /// <summary>Checks the options alone (data-dependent checks happen when training starts).</summary>
    /// <exception cref="LoraException">The first invalid or conflicting option.</exception>
    public void Validate()
    {
        if (!(LearningRate >= 0) || double.IsInfinity(LearningRate))
            throw new LoraException($"learning rate must be >= 0 (got {LearningRate}).");
        if (!(WeightDecay >= 0))
            throw new LoraException($"weight decay must be >= 0 (got {WeightDecay}).");
        if (AdamBeta1 is < 0 or >= 1 || AdamBeta2 is < 0 or >= 1)
            throw new LoraException($"Adam betas must be in [0, 1) (got {AdamBeta1}, {AdamBeta2}).");
        if (!(AdamEpsilon >= 0))
            throw new LoraException($"Adam epsilon must be >= 0 (got {AdamEpsilon}).");
        if (WarmupSteps < 0)
            throw new LoraException($"warmup steps must be >= 0 (got {WarmupSteps}).");
        if (WarmupRatio is { } ratio && WarmupSteps > 0)
            throw new LoraException("give warmup steps or a warmup ratio, not both.");
        if (WarmupRatio is { } r && (r is < 0 or >= 1 || double.IsNaN(r)))
            throw new LoraException($"warmup ratio must be in [0, 1) (got {r}).");
        if (MaxSteps <= 0 && MaxSteps != -1)
            throw new LoraException($"max steps must be > 0 (got {MaxSteps}).");
        if (MaxSteps == -1 && !(Epochs > 0))
            throw new LoraException($"epochs must be > 0 (got {Epochs}).");
        if (BatchSize < 1 || EvalBatchSize < 1)
            throw new LoraException($"batch size must be >= 1 (got {BatchSize}).");
        if (GradientAccumulationSteps < 1)
            throw new LoraException($"gradient accumulation steps must be >= 1 (got {GradientAccumulationSteps}).");
        if (!(MaxGradNorm >= 0))
            throw new LoraException($"max grad norm must be >= 0 (got {MaxGradNorm}; 0 turns clipping off).");
        if (LoggingSteps < 1)
            throw new LoraException($"logging steps must be >= 1 (got {LoggingSteps}).");
        if (EvalSteps < 0)
            throw new LoraException($"eval steps must be >= 0 (got {EvalSteps}).");
        if (SaveSteps < 0)
            throw new LoraException($"save steps must be >= 0 (got {SaveSteps}).");
        if (SaveTotalLimit < 1)
            throw new LoraException($"save total limit must be >= 1 (got {SaveTotalLimit}).");
        if (MaxLength < 2)
            throw new LoraException($"max length must be >= 2 (got {MaxLength}).");
        if (Mode == TrainingMode.TopLayers && TopLayers < 1)
            throw new LoraException($"top layers must be >= 1 (got {TopLayers}).");
        if (Bf16 && Mode != TrainingMode.Peft)
            throw new LoraException("bf16 trains adapters over a bf16 base; full and top-N fine-tuning need fp32 weights.");
    }
}
