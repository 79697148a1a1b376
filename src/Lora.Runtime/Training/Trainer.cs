using System.Diagnostics;
using System.Globalization;
using Lora.Data;
using Lora.Distributed;
using Lora.Models;
using Lora.Peft;
using Lora.Quantization;
using Lora.Training.Objectives;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// The training loop, with transformers' Trainer semantics, over any objective (<see cref="ITrainingObjective"/>:
/// causal-LM SFT by default) and any set of trainable parameters (<see cref="TrainableSelection"/>: a PEFT adapter,
/// full, or the top N layers). One optimizer step:
/// <code>
///   micro-batches m = 1..A (A = gradient_accumulation_steps; fewer at the end of an epoch)
///   N      = Σ_m normaliser of m (label tokens for SFT)                (the whole accumulated batch, C15)
///   for m:  S_m = the objective's summed loss of m;  backward(S_m / N)  (so the gradient is that of the mean)
///   loss   = Σ_m S_m / N                                                (logged; before the update)
///   g      = ‖(‖∇θ₁‖, …, ‖∇θₙ‖)‖₂                                       (grad_norm, before clipping)
///   clip:    ∇θ ← ∇θ · min(1, max_grad_norm / (g + 1e-6))               (when max_grad_norm &gt; 0)
///   lr     = lr₀ · λ(step − 1)                                          (<see cref="LearningRateSchedule"/>)
///   AdamW:   θ ← θ(1 − lr·wd);  m ← β₁m + (1−β₁)∇θ;  v ← β₂v + (1−β₂)∇θ²;
///            θ ← θ − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)          (wd = 0 for biases and norm weights)
/// </code>
/// Steps per epoch = ceil(micro-batches per epoch / A); total steps T = max_steps, or ceil(epochs · steps per epoch).
/// The data order depends only on (seed, epoch), so a resumed run reads exactly the batches the uninterrupted run
/// would have, and the loss sequence is identical. Checkpoints: see <see cref="TrainingCheckpoints"/>.
/// With <see cref="TrainingOptions.DataParallel"/> (W ranks under mpirun) a step reads A·W micro-batches, W at a time
/// in parallel, and equals the single-process step over the same A·W micro-batches; rank 0 alone logs and writes
/// (<see cref="DataParallelTraining"/>, docs/distributed.md).
/// <para>
/// The host never waits for the device inside a step (transformers' Trainer does the same: it reads the loss only at
/// logging steps): the loss, the gradient norm and the metric sums stay on the device, the batch's token count is the
/// host's, the clipping coefficient and the divergence check are device computations, and the fused AdamW takes the
/// check's result as <c>found_inf</c>. The scalars of the steps since the last read are read in one transfer at the
/// next step that logs, evaluates or saves (and the last); <see cref="StepCompleted"/> is raised then, once per step,
/// in order. A non-finite loss or gradient norm still stops the run naming its step, with nothing of that step (or any
/// after it) applied. A data-parallel step reads its loss and metric sums once to sum them over the ranks (MPI on the
/// host); the gradients are summed where they live (NCCL on CUDA).
/// </para>
/// </summary>
public sealed class Trainer : IDisposable
{
    /// <summary>The metrics file in the output directory: one JSON object per log row.</summary>
    public const string MetricsFileName = "metrics.jsonl";

    /// <summary>The loss-curve picture written at the end.</summary>
    public const string LossCurveFileName = "loss.svg";

    private readonly CausalLM _model;
    private readonly PeftConfig? _adapterConfig;
    private readonly ITrainingObjective _objective;
    private readonly ITrainingObjective? _evalObjective;
    private readonly IRolloutObjective? _rollouts;
    private readonly IObjectiveParameters? _objectiveParameters;
    private readonly BatchSampler _sampler;
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> _trainable;
    private readonly AdamW _optimizer;
    private readonly OffloadedParameters? _offload;

    /// <summary>Whether <see cref="Resume"/> read the fp32 master weights from the checkpoint.</summary>
    private bool _mastersRestored;
    private readonly Device _device;
    private readonly TrainingLog _log;
    private readonly DataParallel? _group;
    private TrainerState _state;
    private Tensor? _nonFinite; // sticky device flag: a step so far had a non-finite loss or gradient norm
    private int _cachedEpoch = -1;
    private List<int[]> _epochBatches = [];
    private int _rolloutIndex = -1;
    private IReadOnlyDictionary<string, double> _rolloutMetrics = new Dictionary<string, double>();

    /// <summary>Causal-LM fine-tuning on tokenised examples (<see cref="CausalLMObjective"/>).</summary>
    /// <param name="model">The model; for <see cref="TrainingMode.Peft"/> with adapters already attached
    /// (<see cref="PeftInjector.Inject"/> or <see cref="PeftAdapter.Load"/>).</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <param name="outputDirectory">Where checkpoints, metrics and the final adapter go.</param>
    /// <param name="trainData">Tokenised examples (labels -100 where the loss is not taken).</param>
    /// <param name="evalData">Optional evaluation examples.</param>
    /// <param name="adapterConfig">The adapter's config, written with every checkpoint (PEFT mode).</param>
    /// <param name="padTokenId">Id written on padding (never predicted: its labels are -100).</param>
    public Trainer(CausalLM model, TrainingOptions options, string outputDirectory, IReadOnlyList<TokenizedExample> trainData,
        IReadOnlyList<TokenizedExample>? evalData = null, PeftConfig? adapterConfig = null, int padTokenId = 0)
        : this(model, options, outputDirectory, Sft(trainData, options, padTokenId),
            evalData is { Count: > 0 } ? new CausalLMObjective(evalData, padTokenId, role: "evaluation") : null, adapterConfig)
    {
    }

    /// <summary>Training on any objective.</summary>
    /// <param name="model">The model (see the other constructor).</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <param name="outputDirectory">Where checkpoints, metrics and the final adapter go.</param>
    /// <param name="objective">What is optimized, over the training data.</param>
    /// <param name="evalObjective">The same objective over evaluation data, or null.</param>
    /// <param name="adapterConfig">The adapter's config, written with every checkpoint (PEFT mode).</param>
    public Trainer(CausalLM model, TrainingOptions options, string outputDirectory, ITrainingObjective objective,
        ITrainingObjective? evalObjective = null, PeftConfig? adapterConfig = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(objective);
        options.Validate();
        _model = model;
        Options = options;
        OutputDirectory = outputDirectory;
        _adapterConfig = adapterConfig;
        _objective = objective;
        _evalObjective = evalObjective;
        _device = model.parameters().First().device;
        if (model.Quantization is not null)
        {
            // A quantized base trains through adapters (QLoRA); PEFT's k-bit preparation first (fp32 norms etc.).
            if (options.Mode != TrainingMode.Peft)
                throw new LoraException($"the model is quantized ({model.Quantization}): its weights cannot be trained in full; train an adapter on it (QLoRA), or load the dense model.");
            KbitTraining.Prepare(model);
        }
        else if (options.Bf16)
        {
            // Adapters and an objective's own parameters (PPO's fp32 value head) may be fp32; the base must be bf16.
            var adapterParameters = model.AdapterParameters().Select(p => p.Parameter)
                .Concat((objective as IObjectiveParameters)?.Parameters.Select(p => p.Parameter) ?? [])
                .ToHashSet(ReferenceEqualityComparer.Instance);
            if (model.parameters().Any(p => !adapterParameters.Contains(p) && p.dtype != ScalarType.BFloat16))
                throw new LoraException("bf16: load the base model in bfloat16 (CausalLM.FromPretrained(dir, ScalarType.BFloat16, device)).");
        }

        _trainable = TrainableSelection.Apply(model, options, adapterConfig);
        if (objective is IObjectiveParameters own)
        {
            // An objective's own trainable parameters (PPO's value head) train beside the selection.
            _objectiveParameters = own;
            foreach (var (_, parameter) in own.Parameters)
                parameter.requires_grad = true;
            _trainable = [.. _trainable, .. own.Parameters];
        }

        model.GradientCheckpointing = options.GradientCheckpointing;
        _group = options.DataParallel;

        if (objective is IRolloutObjective rollouts)
        {
            // Online objectives: the sampler's batches are the rollouts' prompt groups (incomplete ones dropped, as TRL's
            // samplers do), and each rollout is trained on for StepsPerRollout optimizer steps.
            if (_group is { WorldSize: > 1 })
                throw new LoraException("rollout objectives (GRPO, PPO) do not run data-parallel yet: run them in one process (without mpirun).");
            _rollouts = rollouts;
            if (rollouts.PromptsPerRollout < 1 || rollouts.StepsPerRollout < 1)
                throw new LoraException($"a rollout needs at least one prompt and one step (got {rollouts.PromptsPerRollout} prompts, {rollouts.StepsPerRollout} steps).");
            _sampler = new BatchSampler(objective.Lengths.ToArray(), rollouts.PromptsPerRollout, options.Sampling, options.Seed, dropLast: true);
            if (_sampler.BatchesPerEpoch == 0)
                throw new LoraException($"the training data has {objective.Lengths.Count} prompts, fewer than one rollout's {rollouts.PromptsPerRollout}: add prompts or lower the batch size.");
            MicroBatchesPerEpoch = _sampler.BatchesPerEpoch * rollouts.StepsPerRollout * options.GradientAccumulationSteps;
            StepsPerEpoch = _sampler.BatchesPerEpoch * rollouts.StepsPerRollout;
        }
        else
        {
            _sampler = new BatchSampler(objective.Lengths.ToArray(), options.BatchSize, options.Sampling, options.Seed);
            MicroBatchesPerEpoch = _sampler.BatchesPerEpoch;
            StepsPerEpoch = Math.Max(1, (MicroBatchesPerEpoch + MicroBatchesPerStep - 1) / MicroBatchesPerStep);
        }

        TotalSteps = options.MaxSteps > 0 ? options.MaxSteps : (int)Math.Ceiling(options.Epochs * StepsPerEpoch);
        var warmup = options.WarmupRatio is { } ratio ? LearningRateSchedule.WarmupFromRatio(ratio, TotalSteps) : options.WarmupSteps;
        Schedule = new LearningRateSchedule(options.Scheduler, options.LearningRate, warmup, TotalSteps);
        _optimizer = OptimizerSetup.AdamW(model, options, out _offload);
        _log = new TrainingLog(options.WriteMetricsFile ? Path.Combine(OutputDirectory, MetricsFileName) : null, writes: IsRoot);
        _state = NewState();
    }

    public TrainingOptions Options { get; }

    public string OutputDirectory { get; }

    /// <summary>The learning-rate schedule in force.</summary>
    public LearningRateSchedule Schedule { get; }

    /// <summary>Micro-batches (of <see cref="TrainingOptions.BatchSize"/>) per pass over the data (for a rollout
    /// objective: its steps per epoch × gradient accumulation).</summary>
    public int MicroBatchesPerEpoch { get; }

    /// <summary>Optimizer steps per epoch: ceil(micro-batches / (accumulation × ranks)).</summary>
    public int StepsPerEpoch { get; }

    /// <summary>T: optimizer steps of the whole run.</summary>
    public int TotalSteps { get; }

    /// <summary>Optimizer steps done.</summary>
    public int GlobalStep => _state.GlobalStep;

    /// <summary>Micro-batches one optimizer step reads over all ranks: accumulation × ranks.</summary>
    public int MicroBatchesPerStep => Options.GradientAccumulationSteps * (_group?.WorldSize ?? 1);

    /// <summary>False on the ranks other than 0 of a data-parallel run: they write no file and raise no
    /// <see cref="Logged"/> or <see cref="Message"/> event.</summary>
    public bool IsRoot => _group?.IsRoot ?? true;

    /// <summary>The trainable parameters, by name.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> TrainableParameters => _trainable;

    /// <summary>What would go to <c>trainer_state.json</c> now.</summary>
    public TrainerState State => _state;

    /// <summary>A log row was written (train or eval).</summary>
    public event Action<TrainingLogEntry>? Logged;

    /// <summary>An optimizer step finished (raised when its values are read: at the next logging, evaluation or
    /// saving step, once per step, in order).</summary>
    public event Action<TrainingProgress>? StepCompleted;

    /// <summary>Information for the person running it (checkpoint written, resumed from, dataset notes).</summary>
    public event Action<string>? Message;

    /// <summary>
    /// Runs to <see cref="TotalSteps"/>. With <paramref name="resumeFrom"/> (a <c>checkpoint-N</c> directory) the
    /// weights, optimizer, RNG, data position and log are restored first and training continues at step N + 1.
    /// </summary>
    /// <exception cref="LoraException">Bad checkpoint, or the loss/gradients became NaN or Inf (the message names
    /// the step and the last good checkpoint; nothing of that step was applied).</exception>
    public TrainingResult Train(string? resumeFrom = null, CancellationToken cancellationToken = default)
    {
        if (IsRoot)
        {
            if (resumeFrom is null)
                PrepareOutputDirectory(OutputDirectory, Options.OverwriteOutputDirectory);
            Directory.CreateDirectory(OutputDirectory);
            foreach (var stale in TrainingCheckpoints.RemoveStaging(OutputDirectory))
                Message?.Invoke($"removed {stale} (an interrupted checkpoint save)");
        }

        // Rank r's dropout draws from seed + r (rank 0, and a single process, from the seed itself).
        var seed = Options.Seed + (_group?.Rank ?? 0);
        torch.manual_seed(seed);
        if (_device.type == DeviceType.CUDA)
            torch.cuda.manual_seed_all(seed);
        if (resumeFrom is not null)
        {
            Resume(resumeFrom);
        }
        else
        {
            _log.Start();
            if (!Options.WriteMetricsFile && IsRoot)
                File.Delete(Path.Combine(OutputDirectory, MetricsFileName)); // an overwritten run's, which would be stale
        }

        string? lastCheckpoint = TrainingCheckpoints.Latest(OutputDirectory);
        if (_group is not null)
            JoinGroup(resumeFrom, () => lastCheckpoint);
        if (resumeFrom is null && Options.EvalOnStart && _evalObjective is not null)
            EvaluateAndLog(trackBest: false);

        var clock = Stopwatch.StartNew();
        var firstStep = _state.GlobalStep;
        long tokensThisRun = 0, tokensSinceLog = 0;
        double lossSinceLog = 0;
        int stepsSinceLog = 0;
        var sinceLog = Stopwatch.StartNew();
        double lastLoss = double.NaN;
        double? lastEval = null;
        Dictionary<string, double>? metricsSinceLog = null;
        var pending = new List<PendingStep>();

        _model.train();
        try
        {
            while (_state.GlobalStep < TotalSteps)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var step = _state.GlobalStep; // 0-based index of the step being made
                var result = Step(step);
                var done = step + 1;
                _state.GlobalStep = done;
                _state.Epoch = (double)done / StepsPerEpoch;
                (_state.SamplerEpoch, _state.SamplerBatch) = DataPosition(done);
                tokensThisRun += result.InputTokens;
                var elapsed = clock.Elapsed;
                var perStep = elapsed / Math.Max(1, done - firstStep);
                result.Progress = (tokensThisRun / Math.Max(elapsed.TotalSeconds, 1e-9), _state.Epoch, elapsed, perStep * (TotalSteps - done));
                pending.Add(result);

                var last = done == TotalSteps;
                var logNow = done % Options.LoggingSteps == 0 || last;
                var evalEvery = Options.EvalSteps ?? Options.LoggingSteps;
                var evalNow = _evalObjective is not null && ((evalEvery > 0 && done % evalEvery == 0) || last);
                var saveNow = Options.SaveSteps > 0 && (done % Options.SaveSteps == 0 || last);

                // The step's scalars stay on the device until a step that logs, evaluates or saves: only there does
                // the host wait for the device (one read-back for all steps since the last one).
                if (!(logNow || evalNow || saveNow))
                    continue;
                foreach (var read in ReadPending(pending, lastCheckpoint))
                {
                    lastLoss = read.Loss;
                    tokensSinceLog += read.InputTokens;
                    lossSinceLog += read.Loss;
                    stepsSinceLog++;
                    foreach (var (name, value) in read.Metrics)
                    {
                        metricsSinceLog ??= [];
                        metricsSinceLog[name] = metricsSinceLog.GetValueOrDefault(name) + value;
                    }

                    StepCompleted?.Invoke(new TrainingProgress(read.Step, TotalSteps, read.Loss, read.LearningRate, read.GradNorm,
                        read.TokensPerSecond, read.Epoch, read.Elapsed, read.Remaining));
                }

                if (logNow)
                {
                    var final = pending[^1];
                    _log.Write(_state, new TrainingLogEntry
                    {
                        Step = done,
                        Epoch = _state.Epoch,
                        Loss = lossSinceLog / stepsSinceLog,
                        LearningRate = final.LearningRate,
                        GradNorm = final.GradNormValue,
                        TokensPerSecond = tokensSinceLog / Math.Max(sinceLog.Elapsed.TotalSeconds, 1e-9),
                        Metrics = metricsSinceLog?.ToDictionary(m => m.Key, m => (object)(m.Value / stepsSinceLog), StringComparer.Ordinal),
                    }, Logged);
                    (lossSinceLog, stepsSinceLog, tokensSinceLog, metricsSinceLog) = (0, 0, 0, null);
                    sinceLog.Restart();
                }

                DisposeAll(pending);

                if (evalNow)
                    lastEval = EvaluateAndLog()["loss"];

                if (saveNow)
                    lastCheckpoint = SaveCheckpoint();
            }
        }
        finally
        {
            DisposeAll(pending);
        }

        if (_evalObjective is not null && lastEval is null)
            lastEval = EvaluateAndLog()["loss"];
        if (double.IsNaN(lastLoss))
            lastLoss = _state.Entries().LastOrDefault(e => e.Loss is not null)?.Loss ?? double.NaN;

        var lossCurve = Path.Combine(OutputDirectory, LossCurveFileName);
        if (IsRoot)
        {
            SaveModel(OutputDirectory);
            AtomicFile.WriteAllText(Path.Combine(OutputDirectory, TrainerState.FileName), _state.ToJson());
            AtomicFile.WriteAllText(lossCurve, LossCurveSvg.Render(_state.Entries(), "Training loss"));
        }

        _group?.Barrier("the end of training (rank 0 writes the outputs)"); // every rank returns once they exist
        var checkpoints = TrainingCheckpoints.List(OutputDirectory).Select(c => c.Path).ToList();
        return new TrainingResult(_state.GlobalStep, lastLoss, lastEval, OutputDirectory, checkpoints, _log.MetricsPath, lossCurve, _state.Entries().ToList());
    }

    /// <summary>
    /// Checks that a fresh run may write to <paramref name="outputDirectory"/>: it must not exist or be empty, unless
    /// <paramref name="overwrite"/> (<see cref="TrainingOptions.OverwriteOutputDirectory"/>), which removes the
    /// previous run's <c>checkpoint-N</c> directories and <c>runs/</c> TensorBoard directory. <see cref="Train"/> calls
    /// it; call it yourself to fail before expensive work that precedes training.
    /// </summary>
    /// <exception cref="LoraException">The directory holds files and <paramref name="overwrite"/> is false.</exception>
    public static void PrepareOutputDirectory(string outputDirectory, bool overwrite)
    {
        if (!Directory.Exists(outputDirectory) || !Directory.EnumerateFileSystemEntries(outputDirectory).Any())
            return;
        if (!overwrite)
        {
            throw new LoraException($"{outputDirectory}: the output directory is not empty (an earlier run?); choose another, " +
                "resume from its checkpoints, or overwrite it (--overwrite; TrainingOptions.OverwriteOutputDirectory).");
        }

        foreach (var dir in Directory.EnumerateDirectories(outputDirectory))
        {
            var name = Path.GetFileName(dir);
            if (TrainingCheckpoints.IsCheckpointName(name) || name == TensorBoardLogger.DefaultDirectoryName)
                Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The objective's metrics over the evaluation data (<c>loss</c> first; the model is put back in
    /// training mode after).</summary>
    public IReadOnlyDictionary<string, double> Evaluate()
    {
        var eval = _evalObjective ?? throw new LoraException("no evaluation data was given.");
        _model.eval();
        try
        {
            using var noGrad = no_grad();
            return eval.Evaluate(_model, _device, Options.EvalBatchSize);
        }
        finally
        {
            _model.train();
        }
    }

    public void Dispose()
    {
        _optimizer.Dispose();
        _offload?.Dispose();
        _nonFinite?.Dispose();
        GradientCheckpoint.ReleasePending();
    }

    private static CausalLMObjective Sft(IReadOnlyList<TokenizedExample> trainData, TrainingOptions options, int padTokenId)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        options.Validate();
        return new CausalLMObjective(trainData, padTokenId, options.Packing, options.MaxLength);
    }

    /// <summary>
    /// One optimizer step's results, on the device until <see cref="ReadPending"/> reads them: the loss sum (fp64),
    /// the gradient norm (fp32) and the metric sums; with what the host knows already.
    /// </summary>
    private sealed class PendingStep(int step, long normalizer, double learningRate, long inputTokens) : IDisposable
    {
        public int Step { get; } = step;

        public long Normalizer { get; } = normalizer;

        public double LearningRate { get; } = learningRate;

        public long InputTokens { get; } = inputTokens;

        public Tensor? LossSum { get; init; }

        public Tensor? GradNorm { get; init; }

        public IReadOnlyDictionary<string, Tensor> MetricSums { get; init; } = new Dictionary<string, Tensor>();

        /// <summary>Per-metric counts (<see cref="ObjectiveLoss.MetricCounts"/>, summed over the micro-batches): such a
        /// metric is divided by its count instead of <see cref="Normalizer"/>.</summary>
        public IReadOnlyDictionary<string, double> MetricCounts { get; init; } = new Dictionary<string, double>();

        /// <summary>Metrics already on the host: the current rollout's (<see cref="IRolloutObjective.Rollout"/>),
        /// logged with each of its steps as they are.</summary>
        public IReadOnlyDictionary<string, double> HostMetrics { get; init; } = new Dictionary<string, double>();

        public (double TokensPerSecond, double Epoch, TimeSpan Elapsed, TimeSpan Remaining) Progress { get; set; }

        /// <summary>Read values: loss (mean over the step's normaliser), gradient norm, metrics (also divided by it).</summary>
        public (double Loss, double GradNorm, Dictionary<string, double> Metrics) Values { get; set; } = (0, 0, []);

        public double GradNormValue => Values.GradNorm;

        private bool _released;

        /// <summary>Frees the device scalars (once: the step's values are read, or the run ends).</summary>
        public void Dispose()
        {
            if (_released)
                return;
            _released = true;
            LossSum?.Dispose();
            GradNorm?.Dispose();
            foreach (var t in MetricSums.Values)
                t.Dispose();
        }
    }

    private sealed record ReadStep(int Step, double Loss, double GradNorm, double LearningRate, long InputTokens, IReadOnlyDictionary<string, double> Metrics,
        double TokensPerSecond, double Epoch, TimeSpan Elapsed, TimeSpan Remaining);

    /// <summary>
    /// Reads the pending steps' scalars in one transfer (the only device synchronisation of the loop) and checks them
    /// in order: the first non-finite loss or gradient norm stops the run naming that step. No update was applied from
    /// that step on: every later optimizer step ran with the device-side <c>found_inf</c> flag set (see <see cref="Step"/>).
    /// </summary>
    private List<ReadStep> ReadPending(List<PendingStep> pending, string? lastCheckpoint)
    {
        var withValues = pending.Where(p => p.LossSum is not null).ToList();
        double[] values = [];
        if (withValues.Count > 0)
        {
            using var scope = NewDisposeScope();
            var parts = withValues.SelectMany(p => new[] { p.LossSum!, p.GradNorm! }.Concat(p.MetricSums.Values))
                .Select(t => t.to(ScalarType.Float64).reshape(1));
            values = cat(parts.ToList(), 0).cpu().data<double>().ToArray();
        }

        var at = 0;
        var read = new List<ReadStep>(pending.Count);
        foreach (var p in pending)
        {
            if (p.LossSum is not null)
            {
                var mean = values[at++] / p.Normalizer;
                var norm = values[at++];
                var metrics = p.MetricSums.Keys.ToDictionary(
                    name => name,
                    name => values[at++] / (p.MetricCounts.TryGetValue(name, out var c) ? Math.Max(c, 1e-12) : p.Normalizer),
                    StringComparer.Ordinal);
                foreach (var (name, value) in p.HostMetrics)
                    metrics[name] = value;
                if (!double.IsFinite(mean))
                    throw Diverged("loss", mean, p.Step, lastCheckpoint);
                if (!double.IsFinite(norm))
                    throw Diverged("gradient norm", norm, p.Step, lastCheckpoint);
                p.Values = (mean, norm, metrics);
            }

            read.Add(new ReadStep(p.Step, p.Values.Loss, p.Values.GradNorm, p.LearningRate, p.InputTokens, p.Values.Metrics,
                p.Progress.TokensPerSecond, p.Progress.Epoch, p.Progress.Elapsed, p.Progress.Remaining));
            p.Dispose(); // its values are on the host now: the device scalars go before StepCompleted and the logging
        }

        return read;
    }

    private static void DisposeAll(List<PendingStep> pending)
    {
        foreach (var p in pending)
            p.Dispose();
        pending.Clear();
    }

    /// <summary>
    /// One optimizer step (0-based <paramref name="step"/>), without reading anything back from the device: the loss
    /// sums and the gradient norm stay tensors (<see cref="PendingStep"/>), the clipping coefficient is computed on
    /// the device, and whether the step is finite too: a non-finite loss or norm sets the sticky <c>found_inf</c> flag
    /// that the fused AdamW reads on the device, so neither this update nor any later one is applied, and the run
    /// stops at the next read.
    /// </summary>
    private PendingStep Step(int step)
    {
        using var scope = NewDisposeScope();
        // On CUDA the step's dropout masks come from the CUDA generator, whose state TorchSharp cannot save; seeding it
        // from the CPU generator (saved in each checkpoint) makes a resumed run draw the masks of the uninterrupted one.
        DeviceRng.SeedForStep(_device);
        var units = StepUnits(step);
        var count = units.Count;
        var batches = new List<IObjectiveBatch>(count);
        try
        {
            foreach (var j in DataParallelTraining.Mine(count, _group)) // all of them in a single process
                batches.Add(_objective.Collate(units[j]));
            var normalizer = batches.Sum(b => b.Normalizer);
            long inputTokens = batches.Sum(b => b.InputTokens);
            if (_group is not null)
                (normalizer, inputTokens) = DataParallelTraining.SumCounts(_group, normalizer, inputTokens);
            var lr = Schedule.LearningRateAt(step);
            foreach (var group in _optimizer.ParamGroups)
                group.LearningRate = lr;
            _optimizer.zero_grad(); // drops gradients: nothing to launch
            if (normalizer == 0)
            {
                Message?.Invoke($"step {step + 1}: the accumulated batch has nothing to learn from (no target tokens); skipped.");
                return new PendingStep(step + 1, normalizer, lr, inputTokens);
            }

            Tensor? lossSum = null;
            var metricSums = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var metricCounts = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var batch in batches)
            {
                using var micro = NewDisposeScope();
                var loss = _objective.Loss(_model, batch, _device);
                (loss.Sum / normalizer).backward();
                GradientCheckpoint.ReleasePending();
                var sum = loss.Sum.detach().to(ScalarType.Float64);
                lossSum = (lossSum is null ? sum : lossSum + sum).MoveToOuterDisposeScope();
                foreach (var (name, metric) in loss.MetricSums ?? new Dictionary<string, Tensor>())
                {
                    var m = metric.detach().to(ScalarType.Float64);
                    metricSums[name] = (metricSums.TryGetValue(name, out var so) ? so + m : m).MoveToOuterDisposeScope();
                }

                foreach (var (name, metricCount) in loss.MetricCounts ?? new Dictionary<string, double>())
                    metricCounts[name] = metricCounts.GetValueOrDefault(name) + metricCount;
            }

            if (_group is not null)
            {
                DataParallelTraining.ReduceGradients(_group, _trainable.Select(t => t.Parameter).ToList());
                // The loss and metric sums are summed over the ranks on the host: the one read of a data-parallel step (a
                // rank without a micro-batch at the end of an epoch contributes zeros and takes rank 0's metric names).
                var hostMetrics = metricSums.ToDictionary(m => m.Key, m => m.Value.item<double>(), StringComparer.Ordinal);
                var hostLoss = DataParallelTraining.SumLoss(_group, lossSum?.item<double>() ?? 0, hostMetrics, metricCounts, someRankIdle: count < _group.WorldSize);
                lossSum = tensor(hostLoss, ScalarType.Float64, _device);
                metricSums = hostMetrics.ToDictionary(m => m.Key, m => tensor(m.Value, ScalarType.Float64, _device), StringComparer.Ordinal);
            }

            var norm = GradientClipping.ClipGlobalNormAsync(_trainable.Select(t => t.Parameter), Options.MaxGradNorm);
            using (no_grad())
            {
                var bad = lossSum!.isfinite().logical_and(norm.to(lossSum.device).isfinite()).logical_not();
                var flag = _nonFinite is null ? bad : _nonFinite.logical_or(bad);
                _nonFinite?.Dispose();
                _nonFinite = flag.DetachFromDisposeScope();
            }

            _offload?.GradientsToHost();
            _optimizer.Step(_nonFinite.to(ScalarType.Float32));
            _offload?.ParametersToDevice();
            _optimizer.zero_grad();
            return new PendingStep(step + 1, normalizer, lr, inputTokens)
            {
                LossSum = lossSum.DetachFromDisposeScope(),
                GradNorm = norm.DetachFromDisposeScope(),
                MetricSums = metricSums.ToDictionary(m => m.Key, m => m.Value.DetachFromDisposeScope(), StringComparer.Ordinal),
                MetricCounts = metricCounts,
                HostMetrics = _rolloutMetrics,
            };
        }
        finally
        {
            foreach (var b in batches)
                b.Dispose();
        }
    }

    private static LoraException Diverged(string what, double value, int step, string? lastCheckpoint) =>
        new($"the {what} became {value.ToString(CultureInfo.InvariantCulture)} at step {step}; training stopped before applying that step. " +
            (lastCheckpoint is null ? "No checkpoint had been saved yet." : $"The last good checkpoint is {lastCheckpoint}.") +
            " Lower the learning rate, enable clipping (max_grad_norm), or check the data.");

    /// <summary>The units of each micro-batch of optimizer step <paramref name="step"/> (0-based): the sampler's
    /// batches, or, for a rollout objective, the current rollout's (made first when a rollout starts).</summary>
    private IReadOnlyList<int[]> StepUnits(int step)
    {
        if (_rollouts is null)
        {
            var epoch = step / StepsPerEpoch;
            var first = step % StepsPerEpoch * MicroBatchesPerStep;
            var count = Math.Min(MicroBatchesPerStep, MicroBatchesPerEpoch - first);
            return BatchesOf(epoch).Skip(first).Take(count).ToList();
        }

        var rollout = step / _rollouts.StepsPerRollout;
        if (rollout != _rolloutIndex)
        {
            var perEpoch = StepsPerEpoch / _rollouts.StepsPerRollout;
            var prompts = BatchesOf(rollout / perEpoch)[rollout % perEpoch];
            var seed = (long)new SplitMix64(new SplitMix64((ulong)(uint)Options.Seed).Next() ^ (0x5EEDUL + (ulong)rollout)).Next() & long.MaxValue;
            _model.eval();
            try
            {
                using var noGrad = no_grad();
                using var scope = NewDisposeScope();
                _rolloutMetrics = _rollouts.Rollout(_model, prompts, _device, seed);
            }
            finally
            {
                _model.train();
            }

            _rolloutIndex = rollout;
        }

        return _rollouts.StepUnits(step % _rollouts.StepsPerRollout);
    }

    private List<int[]> BatchesOf(int epoch)
    {
        if (epoch != _cachedEpoch)
        {
            _epochBatches = _sampler.Batches(epoch).ToList();
            _cachedEpoch = epoch;
        }

        return _epochBatches;
    }

    /// <summary>(epoch, micro-batch) of the next read after <paramref name="stepsDone"/> steps.</summary>
    private (int Epoch, int Batch) DataPosition(int stepsDone) => _rollouts is null
        ? (stepsDone / StepsPerEpoch, stepsDone % StepsPerEpoch * MicroBatchesPerStep)
        : (stepsDone / StepsPerEpoch, stepsDone % StepsPerEpoch / _rollouts.StepsPerRollout); // (epoch, rollout in the epoch)

    // trackBest: false for the evaluation before the first step (there is no checkpoint-0 to be the best).
    private IReadOnlyDictionary<string, double> EvaluateAndLog(bool trackBest = true)
    {
        var metrics = Evaluate();
        var loss = metrics["loss"];
        var others = metrics.Where(m => m.Key is not ("loss" or "perplexity")).ToDictionary(m => "eval_" + m.Key, m => (object)m.Value, StringComparer.Ordinal);
        _log.Write(_state, new TrainingLogEntry
        {
            Step = _state.GlobalStep,
            Epoch = _state.Epoch,
            EvalLoss = loss,
            EvalPerplexity = metrics.TryGetValue("perplexity", out var ppl) ? ppl : null,
            Metrics = others.Count > 0 ? others : null,
        }, Logged);
        if (trackBest && (_state.BestMetric is null || loss < _state.BestMetric))
        {
            _state.BestMetric = loss;
            _state.BestGlobalStep = _state.GlobalStep;
            _state.BestModelCheckpoint = null;
        }

        return metrics;
    }

    private string SaveCheckpoint()
    {
        var step = _state.GlobalStep;
        if (_state.BestGlobalStep == step)
            _state.BestModelCheckpoint = Path.Combine(OutputDirectory, TrainingCheckpoints.NameFor(step));
        if (_group is { WorldSize: > 1 } group)
        {
            // Every rank's dropout generator goes into the checkpoint, as transformers' rng_state_{rank}.pth.
            using var rng = get_rng_state();
            var states = group.GatherToRoot(rng.bytes.ToArray(), "gather of the RNG states");
            if (!group.IsRoot)
                return Path.Combine(OutputDirectory, TrainingCheckpoints.NameFor(step));
            return SaveAndRotate(dir =>
            {
                SaveModel(dir);
                for (var r = 1; r < states!.Length; r++)
                    File.WriteAllBytes(Path.Combine(dir, DataParallelTraining.RngFile(r)), states[r]);
            });
        }

        return SaveAndRotate(SaveModel);
    }

    private string SaveAndRotate(Action<string> saveModel)
    {
        var path = TrainingCheckpoints.Save(OutputDirectory, _state, Options, Schedule, _optimizer, saveModel, _offload);
        Message?.Invoke($"saved {path}");
        foreach (var removed in TrainingCheckpoints.Rotate(OutputDirectory, Options.SaveTotalLimit, _state.BestModelCheckpoint))
            Message?.Invoke($"removed {removed} (save_total_limit {Options.SaveTotalLimit})");
        return path;
    }

    /// <summary>The trained weights: the PEFT adapter, or the whole model (config.json + model.safetensors).</summary>
    private void SaveModel(string dir)
    {
        _objectiveParameters?.Save(dir);
        if (Options.Mode == TrainingMode.Peft)
        {
            PeftAdapter.Save(_model, dir, _adapterConfig!, Options.AdapterName);
            return;
        }

        // A usable Hugging Face directory: config, generation config and tokenizer files come along.
        var sourceDir = _model.Config.Source is { } configPath ? Path.GetDirectoryName(Path.GetFullPath(configPath)) : null;
        PretrainedWriter.WriteInto(_model, sourceDir, dir);
    }

    private void Resume(string checkpoint)
    {
        var state = TrainingCheckpoints.ReadState(checkpoint, TotalSteps, Options.Seed);
        if ((state.WorldSize ?? 1) != (_group?.WorldSize ?? 1))
        {
            throw new LoraException($"{checkpoint}: the checkpoint was written by a run of {state.WorldSize ?? 1} rank(s), this run has {_group?.WorldSize ?? 1}; " +
                "the global batch and the data position would differ. Resume with the same number of ranks.");
        }

        if (Options.Mode == TrainingMode.Peft)
            PeftAdapter.LoadWeights(_model, PeftAdapter.DirectoryFor(checkpoint, Options.AdapterName), Options.AdapterName);
        else
            _model.LoadWeights(checkpoint);
        _objectiveParameters?.Load(checkpoint);
        _rolloutIndex = -1; // made again from the restored weights
        _offload?.ParametersToHost();
        // A bf16 run's fp32 masters: the model file holds them rounded (older checkpoints lack the file: rounded then).
        if (_offload is { KeepsMasters: true } && Path.Combine(checkpoint, TrainingCheckpoints.MasterWeightsFile) is var masters && File.Exists(masters))
        {
            _offload.LoadMasters(masters);
            _mastersRestored = true;
        }
        TrainingCheckpoints.RestoreOptimizerAndRng(checkpoint, _optimizer);
        if (_group is { WorldSize: > 1 })
        {
            var rngPath = Path.Combine(checkpoint, DataParallelTraining.RngFile(_group.Rank));
            if (!File.Exists(rngPath))
                throw new LoraException($"{rngPath}: file not found (this rank's RNG state).");
            using var rng = tensor(File.ReadAllBytes(rngPath), ScalarType.Byte);
            set_rng_state(rng);
        }

        _state = state;
        _state.MaxSteps = TotalSteps;
        _log.Restart(_state);
        Message?.Invoke($"resumed from {checkpoint} at step {state.GlobalStep} of {TotalSteps}");
    }

    /// <summary>Start of a data-parallel run: the same configuration on every rank (checked), rank 0's trainable
    /// weights everywhere, NCCL set up for CUDA gradients, and the watchdog told the last good checkpoint.</summary>
    private void JoinGroup(string? resumeFrom, Func<string?> lastCheckpoint)
    {
        var group = _group!;
        group.TimeoutContext = () => lastCheckpoint() is { } c ? $"The last complete checkpoint is {c}." : "No checkpoint had been saved.";
        if (group.PrepareFor(_device, group.Backend) is { } notice)
            Message?.Invoke($"warning: {notice}");
        group.EnsureSameOnAllRanks("training configuration", DataParallelTraining.Describe(_model, Options, _objective, _trainable,
            TotalSteps, StepsPerEpoch, resumeFrom, _state.GlobalStep, _device));
        DataParallelTraining.BroadcastParameters(group, _trainable.Select(t => t.Parameter).ToList());
        // The optimizer's copies (offloaded, or fp32 masters of bf16 weights) take them too — unless every rank has just
        // read the same masters from the checkpoint, which the rounded broadcast weights would overwrite.
        if (!_mastersRestored)
            _offload?.ParametersToHost();
        if (group.WorldSize > 1)
            _state.WorldSize = group.WorldSize;
    }

    private TrainerState NewState() => new()
    {
        MaxSteps = TotalSteps,
        NumTrainEpochs = (int)Math.Ceiling((double)TotalSteps / StepsPerEpoch),
        LoggingSteps = Options.LoggingSteps,
        EvalSteps = Options.EvalSteps ?? Options.LoggingSteps,
        SaveSteps = Options.SaveSteps,
        TrainBatchSize = Options.BatchSize,
        Seed = Options.Seed,
    };
}
