using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// The <c>checkpoint-{global_step}</c> directories of an output directory (transformers' layout): writing one
/// atomically (assembled under a hidden temporary name, then renamed), keeping the newest K, and finding the latest.
/// <code>
///   checkpoint-{step}/
///     adapter_config.json, adapter_model.safetensors   PEFT adapter (any method) | config.json, model.safetensors (full / top-N)
///     optimizer.bin       AdamW state (TorchSharp's native format: per group lr/betas/eps/decay, per parameter step, m, v)
///     master_weights.safetensors   fp32 master copies of bf16/fp16 trainable weights (full / top-N in bf16 only)
///     scheduler.json      schedule type, base lr, warmup W, total T, steps taken
///     rng_state.bin       the CPU torch generator state (dropout)
///     trainer_state.json  global_step, epoch, log_history, best metric, data position
///     training_args.json  the options of the run
/// </code>
/// </summary>
public static partial class TrainingCheckpoints
{
    public const string Prefix = "checkpoint";

    public const string OptimizerFile = "optimizer.bin";

    /// <summary>The fp32 master weights of a bf16/fp16 full or top-layer run (the model file holds them rounded), so a
    /// resumed run continues from the exact values (DeepSpeed keeps them in its optimizer states, apex in
    /// <c>amp.state_dict</c>'s master params).</summary>
    public const string MasterWeightsFile = "master_weights.safetensors";

    public const string SchedulerFile = "scheduler.json";

    public const string RngFile = "rng_state.bin";

    public const string ArgsFile = "training_args.json";

    /// <summary>The directory name for <paramref name="step"/>.</summary>
    public static string NameFor(int step) => $"{Prefix}-{step.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Complete checkpoints under <paramref name="outputDirectory"/> (those with a trainer state), by step.</summary>
    public static IReadOnlyList<(int Step, string Path)> List(string outputDirectory)
    {
        if (!Directory.Exists(outputDirectory))
            return [];
        return Directory.EnumerateDirectories(outputDirectory)
            .Select(d => (Match: CheckpointName().Match(Path.GetFileName(d)), Path: d))
            .Where(x => x.Match.Success && File.Exists(Path.Combine(x.Path, TrainerState.FileName)))
            .Select(x => (int.Parse(x.Match.Groups[1].Value, CultureInfo.InvariantCulture), x.Path))
            .OrderBy(x => x.Item1)
            .ToList();
    }

    /// <summary>transformers' <c>get_last_checkpoint</c>: the highest step, or null.</summary>
    public static string? Latest(string outputDirectory) => List(outputDirectory) is { Count: > 0 } all ? all[^1].Path : null;

    /// <summary>Writes <c>checkpoint-{step}</c> with <paramref name="fill"/> filling a fresh temporary directory, then
    /// renames it into place (replacing an older one of the same step). Returns the final path.</summary>
    public static string Write(string outputDirectory, int step, Action<string> fill)
    {
        Directory.CreateDirectory(outputDirectory);
        var final = Path.Combine(outputDirectory, NameFor(step));
        var staging = Path.Combine(outputDirectory, $".{NameFor(step)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            fill(staging);
            if (Directory.Exists(final))
                Directory.Delete(final, recursive: true);
            Directory.Move(staging, final);
            return final;
        }
        catch
        {
            if (Directory.Exists(staging))
                Directory.Delete(staging, recursive: true);
            throw;
        }
    }

    /// <summary>Whether <paramref name="name"/> is a <c>checkpoint-N</c> directory name.</summary>
    public static bool IsCheckpointName(string name) => CheckpointName().IsMatch(name);

    /// <summary>Deletes the hidden staging directories (<c>.checkpoint-N.tmp-*</c>) that a save interrupted by a
    /// crash or kill leaves behind; returns their paths.</summary>
    public static IReadOnlyList<string> RemoveStaging(string outputDirectory)
    {
        if (!Directory.Exists(outputDirectory))
            return [];
        var removed = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories(outputDirectory).Where(d => StagingName().IsMatch(Path.GetFileName(d))).Order(StringComparer.Ordinal))
        {
            Directory.Delete(dir, recursive: true);
            removed.Add(dir);
        }

        return removed;
    }

    /// <summary><c>save_total_limit</c>: deletes the oldest checkpoints until <paramref name="keep"/> remain, never the
    /// newest one nor <paramref name="protect"/> (the best one; then K + 1 may remain, as in transformers).</summary>
    public static IReadOnlyList<string> Rotate(string outputDirectory, int? keep, string? protect = null)
    {
        var all = List(outputDirectory).Select(c => c.Path).ToList();
        if (keep is not { } k || all.Count <= k)
            return [];
        var removed = new List<string>();
        var remaining = all.Count;
        foreach (var dir in all.Take(all.Count - 1))
        {
            if (remaining <= k)
                break;
            if (protect is not null && Path.GetFullPath(dir) == Path.GetFullPath(protect))
                continue;
            Directory.Delete(dir, recursive: true);
            removed.Add(dir);
            remaining--;
        }

        return removed;
    }

    /// <summary>Writes <c>checkpoint-{state.GlobalStep}</c> atomically: the trained weights (<paramref name="saveModel"/>),
    /// the optimizer (and the fp32 master weights of a bf16 run), the schedule, the RNG state, the trainer state and the
    /// options.</summary>
    internal static string Save(string outputDirectory, TrainerState state, TrainingOptions options, LearningRateSchedule schedule,
        AdamW optimizer, Action<string> saveModel, OffloadedParameters? masters = null)
    {
        var step = state.GlobalStep;
        return Write(outputDirectory, step, dir =>
        {
            saveModel(dir);
            optimizer.save_state_dict(Path.Combine(dir, OptimizerFile));
            if (masters is { KeepsMasters: true })
                masters.SaveMasters(Path.Combine(dir, MasterWeightsFile));
            File.WriteAllText(Path.Combine(dir, SchedulerFile), JsonSerializer.Serialize(new
            {
                type = LearningRateSchedule.Name(schedule.Type),
                base_lr = schedule.BaseLearningRate,
                warmup_steps = schedule.WarmupSteps,
                total_steps = schedule.TotalSteps,
                last_epoch = step,
                last_lr = schedule.LearningRateAt(step),
            }));
            using (var rng = get_rng_state())
                File.WriteAllBytes(Path.Combine(dir, RngFile), rng.bytes.ToArray());
            File.WriteAllText(Path.Combine(dir, TrainerState.FileName), state.ToJson());
            File.WriteAllText(Path.Combine(dir, ArgsFile), JsonSerializer.Serialize(options, new JsonSerializerOptions { WriteIndented = true }));
        });
    }

    /// <summary>Reads <paramref name="checkpoint"/>'s trainer state and checks it fits this run.</summary>
    internal static TrainerState ReadState(string checkpoint, int totalSteps, int seed)
    {
        var statePath = Path.Combine(checkpoint, TrainerState.FileName);
        if (!File.Exists(statePath))
            throw new LoraException($"{checkpoint}: not a checkpoint directory ({TrainerState.FileName} not found).");
        var state = TrainerState.Read(statePath);
        if (state.GlobalStep > totalSteps)
            throw new LoraException($"{checkpoint}: the checkpoint is at step {state.GlobalStep}, past this run's {totalSteps} steps.");
        if (state.Seed != seed)
            throw new LoraException($"{checkpoint}: the checkpoint was trained with seed {state.Seed}, this run has seed {seed}; the data order would differ.");
        return state;
    }

    /// <summary>Restores the optimizer and the RNG state saved in <paramref name="checkpoint"/>.</summary>
    internal static void RestoreOptimizerAndRng(string checkpoint, AdamW optimizer)
    {
        var optimizerPath = Path.Combine(checkpoint, OptimizerFile);
        if (!File.Exists(optimizerPath))
            throw new LoraException($"{optimizerPath}: file not found.");
        try
        {
            optimizer.load_state_dict(optimizerPath);
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or EndOfStreamException)
        {
            throw new LoraException($"{optimizerPath}: the optimizer state does not match these trainable parameters ({e.Message}).", e);
        }

        var rngPath = Path.Combine(checkpoint, RngFile);
        if (File.Exists(rngPath))
        {
            using var rng = tensor(File.ReadAllBytes(rngPath), ScalarType.Byte);
            set_rng_state(rng);
        }
    }

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex CheckpointName();

    [GeneratedRegex(@"^\.checkpoint-\d+\.tmp-[0-9a-f]{32}$")]
    private static partial Regex StagingName();
}
