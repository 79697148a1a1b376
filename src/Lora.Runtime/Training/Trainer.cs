using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Lora.Adapters;
using Lora.Data;
using Lora.Evaluation;
using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// Instruction tuning of a <see cref="CausalLM"/> (LoRA adapters by default, or full / top-N fine-tuning), with
/// transformers' Trainer semantics. One optimizer step:
/// <code>
///   micro-batches m = 1..A (A = gradient_accumulation_steps; fewer at the end of an epoch)
///   N      = Σ_m non-ignored shifted labels of m                       (the whole accumulated batch, C15)
///   for m:  S_m = Σ token CE of m (fp32);   backward(S_m / N)           (so the gradient is that of the mean)
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
/// </summary>
public sealed class Trainer : IDisposable
{
    /// <summary>The metrics file in the output directory: one JSON object per log row.</summary>
    public const string MetricsFileName = "metrics.jsonl";

    /// <summary>The loss-curve picture written at the end.</summary>
    public const string LossCurveFileName = "loss.svg";

    private static readonly JsonSerializerOptions MetricsJson = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    private readonly CausalLM _model;
    private readonly LoraConfig? _adapterConfig;
    private readonly IReadOnlyList<TokenizedExample>? _evalData;
    private readonly IReadOnlyList<TokenizedExample>? _rows;
    private readonly IReadOnlyList<PackedSequence>? _packedRows;
    private readonly Collator _collator;
    private readonly BatchSampler _sampler;
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> _trainable;
    private readonly AdamW _optimizer;
    private readonly Device _device;
    private TrainerState _state;
    private int _cachedEpoch = -1;
    private List<int[]> _epochBatches = [];

    /// <param name="model">The model; for <see cref="TrainingMode.Lora"/> with adapters already attached
    /// (<see cref="LoraInjector.Inject"/> or <see cref="PeftAdapter.Load"/>).</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <param name="outputDirectory">Where checkpoints, metrics and the final adapter go.</param>
    /// <param name="trainData">Tokenised examples (labels -100 where the loss is not taken).</param>
    /// <param name="evalData">Optional evaluation examples.</param>
    /// <param name="adapterConfig">The adapter's config, written with every checkpoint (LoRA mode).</param>
    /// <param name="padTokenId">Id written on padding (never predicted: its labels are -100).</param>
    public Trainer(CausalLM model, TrainingOptions options, string outputDirectory, IReadOnlyList<TokenizedExample> trainData,
        IReadOnlyList<TokenizedExample>? evalData = null, LoraConfig? adapterConfig = null, int padTokenId = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(trainData);
        options.Validate();
        _model = model;
        Options = options;
        OutputDirectory = outputDirectory;
        _adapterConfig = adapterConfig;
        _evalData = evalData is { Count: > 0 } ? evalData : null;
        _device = model.parameters().First().device;
        if (trainData.Count == 0)
            throw new LoraException("the training data has no examples.");
        if (trainData.All(e => e.PredictedTokens == 0))
            throw new LoraException("every training example is fully masked (no label other than -100 after the shift): nothing to learn.");
        if (options.Bf16)
        {
            if (_device.type != DeviceType.CUDA)
                throw new LoraException("bf16 needs a CUDA device (it is the base model's compute dtype on GPU); train in fp32 on CPU.");
            if (model.named_parameters().Any(p => !AdapterKeys.IsAdapterParameter(p.name) && p.parameter.dtype != ScalarType.BFloat16))
                throw new LoraException("bf16: load the base model in bfloat16 (CausalLM.FromPretrained(dir, ScalarType.BFloat16, device)).");
        }

        _trainable = SelectTrainable(model, options, adapterConfig);
        model.GradientCheckpointing = options.GradientCheckpointing;

        if (options.Packing)
        {
            _packedRows = Packer.Pack(trainData, options.MaxLength).ToList();
            _sampler = new BatchSampler(_packedRows.Select(r => r.Length).ToArray(), options.BatchSize, options.Sampling, options.Seed);
        }
        else
        {
            _rows = trainData;
            _sampler = new BatchSampler(trainData.Select(e => e.InputIds.Length).ToArray(), options.BatchSize, options.Sampling, options.Seed);
        }

        _collator = new Collator(padTokenId, packedMask: true);
        MicroBatchesPerEpoch = _sampler.BatchesPerEpoch;
        StepsPerEpoch = Math.Max(1, (MicroBatchesPerEpoch + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps);
        TotalSteps = options.MaxSteps > 0 ? options.MaxSteps : (int)Math.Ceiling(options.Epochs * StepsPerEpoch);
        var warmup = options.WarmupRatio is { } ratio ? LearningRateSchedule.WarmupFromRatio(ratio, TotalSteps) : options.WarmupSteps;
        Schedule = new LearningRateSchedule(options.Scheduler, options.LearningRate, warmup, TotalSteps);

        var (decay, noDecay) = WeightDecayGroups.Split(model);
        var groups = new List<AdamW.ParamGroup>();
        if (decay.Count > 0)
            groups.Add(Group(decay, options.WeightDecay));
        if (noDecay.Count > 0)
            groups.Add(Group(noDecay, 0));
        _optimizer = torch.optim.AdamW(groups, options.LearningRate, options.AdamBeta1, options.AdamBeta2, options.AdamEpsilon);
        _state = NewState();
    }

    public TrainingOptions Options { get; }

    public string OutputDirectory { get; }

    /// <summary>The learning-rate schedule in force.</summary>
    public LearningRateSchedule Schedule { get; }

    /// <summary>Micro-batches (of <see cref="TrainingOptions.BatchSize"/>) per pass over the data.</summary>
    public int MicroBatchesPerEpoch { get; }

    /// <summary>Optimizer steps per epoch: ceil(micro-batches / accumulation).</summary>
    public int StepsPerEpoch { get; }

    /// <summary>T: optimizer steps of the whole run.</summary>
    public int TotalSteps { get; }

    /// <summary>Optimizer steps done.</summary>
    public int GlobalStep => _state.GlobalStep;

    /// <summary>The trainable parameters, by name.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> TrainableParameters => _trainable;

    /// <summary>What would go to <c>trainer_state.json</c> now.</summary>
    public TrainerState State => _state;

    /// <summary>A log row was written (train or eval).</summary>
    public event Action<TrainingLogEntry>? Logged;

    /// <summary>An optimizer step finished.</summary>
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
        Directory.CreateDirectory(OutputDirectory);
        torch.manual_seed(Options.Seed);
        if (_device.type == DeviceType.CUDA)
            torch.cuda.manual_seed_all(Options.Seed);
        if (resumeFrom is not null)
            Resume(resumeFrom);
        else
            File.WriteAllText(MetricsPath, string.Empty);

        var clock = Stopwatch.StartNew();
        var firstStep = _state.GlobalStep;
        long tokensThisRun = 0, tokensSinceLog = 0;
        double lossSinceLog = 0;
        int stepsSinceLog = 0;
        var sinceLog = Stopwatch.StartNew();
        double lastLoss = double.NaN;
        string? lastCheckpoint = TrainingCheckpoints.Latest(OutputDirectory);
        double? lastEval = null;

        _model.train();
        while (_state.GlobalStep < TotalSteps)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var step = _state.GlobalStep; // 0-based index of the step being made
            var (loss, gradNorm, lr, inputTokens) = Step(step, lastCheckpoint);
            var done = step + 1;
            _state.GlobalStep = done;
            _state.Epoch = (double)done / StepsPerEpoch;
            (_state.SamplerEpoch, _state.SamplerBatch) = DataPosition(done);
            lastLoss = loss;
            tokensThisRun += inputTokens;
            tokensSinceLog += inputTokens;
            lossSinceLog += loss;
            stepsSinceLog++;

            var elapsed = clock.Elapsed;
            var perStep = elapsed / Math.Max(1, done - firstStep);
            StepCompleted?.Invoke(new TrainingProgress(done, TotalSteps, loss, lr, gradNorm,
                tokensThisRun / Math.Max(elapsed.TotalSeconds, 1e-9), _state.Epoch, elapsed, perStep * (TotalSteps - done)));

            var last = done == TotalSteps;
            if (done % Options.LoggingSteps == 0 || last)
            {
                Log(new TrainingLogEntry
                {
                    Step = done,
                    Epoch = _state.Epoch,
                    Loss = lossSinceLog / stepsSinceLog,
                    LearningRate = lr,
                    GradNorm = gradNorm,
                    TokensPerSecond = tokensSinceLog / Math.Max(sinceLog.Elapsed.TotalSeconds, 1e-9),
                });
                (lossSinceLog, stepsSinceLog, tokensSinceLog) = (0, 0, 0);
                sinceLog.Restart();
            }

            var evalEvery = Options.EvalSteps ?? Options.LoggingSteps;
            if (_evalData is not null && ((evalEvery > 0 && done % evalEvery == 0) || last))
                lastEval = EvaluateAndLog().Loss;

            if (Options.SaveSteps > 0 && (done % Options.SaveSteps == 0 || last))
                lastCheckpoint = SaveCheckpoint();
        }

        if (_evalData is not null && lastEval is null)
            lastEval = EvaluateAndLog().Loss;
        if (double.IsNaN(lastLoss))
            lastLoss = _state.Entries().LastOrDefault(e => e.Loss is not null)?.Loss ?? double.NaN;

        SaveModel(OutputDirectory);
        AtomicFile.WriteAllText(Path.Combine(OutputDirectory, TrainerState.FileName), _state.ToJson());
        AtomicFile.WriteAllText(LossCurvePath, LossCurveSvg.Render(_state.Entries(), "Training loss"));
        var checkpoints = TrainingCheckpoints.List(OutputDirectory).Select(c => c.Path).ToList();
        return new TrainingResult(_state.GlobalStep, lastLoss, lastEval, OutputDirectory, checkpoints, MetricsPath, LossCurvePath, _state.Entries().ToList());
    }

    /// <summary>Token-weighted loss over the evaluation data (the model is put back in training mode after).</summary>
    public EvaluationResult Evaluate()
    {
        if (_evalData is null)
            throw new LoraException("no evaluation data was given.");
        _model.eval();
        try
        {
            using var noGrad = no_grad();
            double sum = 0;
            long tokens = 0;
            foreach (var chunk in _evalData.Chunk(Options.EvalBatchSize))
            {
                using var scope = NewDisposeScope();
                using var batch = _collator.Collate(chunk);
                var logits = _model.Forward(batch.InputIds.to(_device), batch.AttentionMask.to(_device));
                var (s, n) = CausalLMLoss.Sum(logits, batch.Labels.to(_device));
                sum += s.to(ScalarType.Float64).item<double>();
                tokens += n;
            }

            if (tokens == 0)
                throw new LoraException("the evaluation data has no predicted tokens (every example is fully masked).");
            return new EvaluationResult(sum / tokens, Math.Exp(sum / tokens), tokens);
        }
        finally
        {
            _model.train();
        }
    }

    public void Dispose()
    {
        _optimizer.Dispose();
        GradientCheckpoint.ReleasePending();
    }

    private string MetricsPath => Path.Combine(OutputDirectory, MetricsFileName);

    private string LossCurvePath => Path.Combine(OutputDirectory, LossCurveFileName);

    /// <summary>One optimizer step (0-based <paramref name="step"/>); returns its loss, pre-clip norm, rate, tokens.</summary>
    private (double Loss, double GradNorm, double Lr, long InputTokens) Step(int step, string? lastCheckpoint)
    {
        using var scope = NewDisposeScope();
        var epoch = step / StepsPerEpoch;
        var first = step % StepsPerEpoch * Options.GradientAccumulationSteps;
        var count = Math.Min(Options.GradientAccumulationSteps, MicroBatchesPerEpoch - first);
        var batches = new List<Batch>(count);
        try
        {
            foreach (var indices in BatchesOf(epoch).Skip(first).Take(count))
                batches.Add(Collate(indices));
            var tokens = batches.Sum(b => b.LabelTokens);
            long inputTokens = batches.Sum(b => b.InputTokens);
            var lr = Schedule.LearningRateAt(step);
            foreach (var group in _optimizer.ParamGroups)
                group.LearningRate = lr;
            _optimizer.zero_grad();
            if (tokens == 0)
            {
                Message?.Invoke($"step {step + 1}: the accumulated batch has no target tokens; skipped.");
                return (0, 0, lr, inputTokens);
            }

            double lossSum = 0;
            foreach (var batch in batches)
            {
                using var micro = NewDisposeScope();
                var logits = batch.PackedMask is not null
                    ? _model.Forward(batch.InputIds.to(_device), batch.PackedMask.to(_device), batch.PositionIds.to(_device))
                    : _model.Forward(batch.InputIds.to(_device), batch.InputTokens == batch.InputIds.numel() ? null : batch.AttentionMask.to(_device));
                var (sum, _) = CausalLMLoss.Sum(logits, batch.Labels.to(_device));
                (sum / tokens).backward();
                GradientCheckpoint.ReleasePending();
                lossSum += sum.to(ScalarType.Float64).item<double>();
            }

            var loss = lossSum / tokens;
            if (!double.IsFinite(loss))
                throw Diverged("loss", loss, step + 1, lastCheckpoint);
            var norm = GradientClipping.ClipGlobalNorm(_trainable.Select(t => t.Parameter), Options.MaxGradNorm);
            if (!double.IsFinite(norm))
                throw Diverged("gradient norm", norm, step + 1, lastCheckpoint);
            _optimizer.step();
            _optimizer.zero_grad();
            return (loss, norm, lr, inputTokens);
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

    private Batch Collate(int[] indices) => _packedRows is not null
        ? _collator.Collate(indices.Select(i => _packedRows[i]).ToList())
        : _collator.Collate(indices.Select(i => _rows![i]).ToList());

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
    private (int Epoch, int Batch) DataPosition(int stepsDone) =>
        (stepsDone / StepsPerEpoch, stepsDone % StepsPerEpoch * Options.GradientAccumulationSteps);

    private EvaluationResult EvaluateAndLog()
    {
        var result = Evaluate();
        Log(new TrainingLogEntry { Step = _state.GlobalStep, Epoch = _state.Epoch, EvalLoss = result.Loss, EvalPerplexity = result.Perplexity });
        if (_state.BestMetric is null || result.Loss < _state.BestMetric)
        {
            _state.BestMetric = result.Loss;
            _state.BestGlobalStep = _state.GlobalStep;
            _state.BestModelCheckpoint = null;
        }

        return result;
    }

    private void Log(TrainingLogEntry entry)
    {
        _state.Add(entry);
        File.AppendAllText(MetricsPath, JsonSerializer.Serialize(entry, MetricsJson) + "\n");
        Logged?.Invoke(entry);
    }

    private string SaveCheckpoint()
    {
        var step = _state.GlobalStep;
        if (_state.BestGlobalStep == step)
            _state.BestModelCheckpoint = Path.Combine(OutputDirectory, TrainingCheckpoints.NameFor(step));
        var path = TrainingCheckpoints.Write(OutputDirectory, step, dir =>
        {
            SaveModel(dir);
            _optimizer.save_state_dict(Path.Combine(dir, TrainingCheckpoints.OptimizerFile));
            File.WriteAllText(Path.Combine(dir, TrainingCheckpoints.SchedulerFile), JsonSerializer.Serialize(new
            {
                type = LearningRateSchedule.Name(Schedule.Type),
                base_lr = Schedule.BaseLearningRate,
                warmup_steps = Schedule.WarmupSteps,
                total_steps = Schedule.TotalSteps,
                last_epoch = step,
                last_lr = Schedule.LearningRateAt(step),
            }));
            using (var rng = get_rng_state())
                File.WriteAllBytes(Path.Combine(dir, TrainingCheckpoints.RngFile), rng.bytes.ToArray());
            File.WriteAllText(Path.Combine(dir, TrainerState.FileName), _state.ToJson());
            File.WriteAllText(Path.Combine(dir, TrainingCheckpoints.ArgsFile), JsonSerializer.Serialize(Options, new JsonSerializerOptions { WriteIndented = true }));
        });
        Message?.Invoke($"saved {path}");
        foreach (var removed in TrainingCheckpoints.Rotate(OutputDirectory, Options.SaveTotalLimit, _state.BestModelCheckpoint))
            Message?.Invoke($"removed {removed} (save_total_limit {Options.SaveTotalLimit})");
        return path;
    }

    /// <summary>The trained weights: the PEFT adapter (LoRA) or the whole model (config.json + model.safetensors).</summary>
    private void SaveModel(string dir)
    {
        if (Options.Mode == TrainingMode.Lora)
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
        var statePath = Path.Combine(checkpoint, TrainerState.FileName);
        if (!File.Exists(statePath))
            throw new LoraException($"{checkpoint}: not a checkpoint directory ({TrainerState.FileName} not found).");
        var state = TrainerState.Read(statePath);
        if (state.GlobalStep > TotalSteps)
            throw new LoraException($"{checkpoint}: the checkpoint is at step {state.GlobalStep}, past this run's {TotalSteps} steps.");
        if (state.Seed != Options.Seed)
            throw new LoraException($"{checkpoint}: the checkpoint was trained with seed {state.Seed}, this run has seed {Options.Seed}; the data order would differ.");

        if (Options.Mode == TrainingMode.Lora)
            PeftAdapter.LoadWeights(_model, PeftAdapter.DirectoryFor(checkpoint, Options.AdapterName), Options.AdapterName);
        else
            _model.LoadWeights(checkpoint);

        var optimizerPath = Path.Combine(checkpoint, TrainingCheckpoints.OptimizerFile);
        if (!File.Exists(optimizerPath))
            throw new LoraException($"{optimizerPath}: file not found.");
        try
        {
            _optimizer.load_state_dict(optimizerPath);
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or EndOfStreamException)
        {
            throw new LoraException($"{optimizerPath}: the optimizer state does not match these trainable parameters ({e.Message}).", e);
        }

        var rngPath = Path.Combine(checkpoint, TrainingCheckpoints.RngFile);
        if (File.Exists(rngPath))
        {
            using var rng = tensor(File.ReadAllBytes(rngPath), ScalarType.Byte);
            set_rng_state(rng);
        }

        _state = state;
        _state.MaxSteps = TotalSteps;
        File.WriteAllLines(MetricsPath, _state.Entries().Select(e => JsonSerializer.Serialize(e, MetricsJson)));
        Message?.Invoke($"resumed from {checkpoint} at step {state.GlobalStep} of {TotalSteps}");
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

    private AdamW.ParamGroup Group(IEnumerable<(string Name, Parameter Parameter)> parameters, double weightDecay) =>
        new(parameters.Select(p => p.Parameter), new AdamW.Options
        {
            LearningRate = Options.LearningRate,
            beta1 = Options.AdamBeta1,
            beta2 = Options.AdamBeta2,
            eps = Options.AdamEpsilon,
            weight_decay = weightDecay,
            amsgrad = false,
            maximize = false,
        });

    /// <summary>Sets requires_grad for the mode and returns the trainable parameters.</summary>
    private static IReadOnlyList<(string Name, Parameter Parameter)> SelectTrainable(CausalLM model, TrainingOptions options, LoraConfig? adapterConfig)
    {
        switch (options.Mode)
        {
            case TrainingMode.Lora:
                if (!model.AdaptedLayers().Any())
                    throw new LoraException("LoRA training needs adapters on the model: inject them (LoraInjector.Inject) or load one (PeftAdapter.Load), or choose full fine-tuning.");
                if (adapterConfig is null)
                    throw new LoraException("LoRA training needs the adapter's LoraConfig (it is saved with every checkpoint).");
                // The trained adapter, plus the biases and modules_to_save its config declares (all saved with it).
                return model.MarkTrainable(adapterConfig, options.AdapterName);
            case TrainingMode.Full:
                if (model.AdaptedLayers().Any())
                    throw new LoraException("full fine-tuning of a model with adapters: merge and unload them first (MergeAndUnload).");
                foreach (var (_, p) in model.named_parameters())
                    p.requires_grad = true;
                return model.named_parameters().Select(p => (p.name, p.parameter)).ToList();
            default:
                if (model.AdaptedLayers().Any())
                    throw new LoraException("top-N layer fine-tuning of a model with adapters: merge and unload them first (MergeAndUnload).");
                var layers = model.Config.NumLayers;
                if (options.TopLayers > layers)
                    throw new LoraException($"top layers {options.TopLayers} > the model's {layers} layers.");
                var trained = Enumerable.Range(layers - options.TopLayers, options.TopLayers).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToHashSet();
                var result = new List<(string, Parameter)>();
                foreach (var (name, p) in model.named_parameters())
                {
                    var parts = name.Split('.');
                    var layerIndex = Array.FindIndex(parts, s => s is "layers" or "h");
                    var train = (layerIndex >= 0 && layerIndex + 1 < parts.Length && trained.Contains(parts[layerIndex + 1]))
                        || name is "model.norm.weight" or "transformer.ln_f.weight" or "transformer.ln_f.bias";
                    p.requires_grad = train;
                    if (train)
                        result.Add((name, p));
                }

                return result;
        }
    }
}
