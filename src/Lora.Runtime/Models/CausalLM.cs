using Lora.Backend;
using Lora.Modules;
using Lora.Modules.Bases;
using Lora.Quantization;
using Lora.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// A decoder-only language model whose module tree mirrors the Hugging Face checkpoint: the dotted path of every
/// parameter is its key in <c>model.safetensors</c> (<c>model.layers.0.self_attn.q_proj.weight</c>,
/// <c>transformer.h.0.attn.c_attn.weight</c>, <c>lm_head.weight</c>).
/// </summary>
public abstract class CausalLM : nn.Module
{
    /// <summary>Compute dtypes a model can be built in.</summary>
    public static readonly IReadOnlyList<ScalarType> SupportedDTypes = [ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float16];

    protected CausalLM(string name)
        : base(name)
    {
    }

    /// <summary>The parsed <c>config.json</c>.</summary>
    public abstract ModelConfig Config { get; }

    /// <summary>Whether the architecture runs padding-free packed batches (<see cref="PackedSegments"/>: examples found
    /// from host position ids, attention within each, no mask); the others take the dense block-diagonal mask.</summary>
    public virtual bool SupportsPaddingFree => false;

    /// <summary>
    /// Logits <c>(B, T, vocab)</c> for <paramref name="inputIds"/> <c>(B, T)</c> (int64).
    /// <paramref name="attentionMask"/> <c>(B, T_past + T)</c> of 1 (attend) / 0 (padding), as in transformers;
    /// null means all ones; a 4-D bool mask <c>(B, 1, T, T_past + T)</c> (true = attend, e.g. block-diagonal causal for
    /// packed sequences) is used as is and then needs explicit <paramref name="positionIds"/>.
    /// <paramref name="positionIds"/> <c>(B, T)</c>; null means derived from the mask
    /// (<c>cumsum(mask) - 1</c>, so left padding keeps real tokens at positions 0, 1, ...) or <c>T_past + arange(T)</c>.
    /// With <paramref name="cache"/>, attends over the cached positions too and appends the new ones.
    /// Where <see cref="SupportsPaddingFree"/>: with no mask and no cache, position ids held on the host that restart
    /// within a row mark packed examples, and attention stays within each (<see cref="PackedSegments"/>).
    /// <para>
    /// With an active prompt-learning adapter (prompt tuning, P-tuning, prefix tuning: <see cref="ActivePrompt"/>) the
    /// adapter enters the pass first, as PEFT's <c>PeftModelForCausalLM.forward</c> wraps a transformers model: its
    /// virtual positions are attended (the mask and the caller's <c>T_past</c> never include them) and, for prompt
    /// tuning and P-tuning, come back as the first logits. Then the architecture runs (<see cref="Decode"/>).
    /// An architecture that overrides this method instead of <see cref="Decode"/> runs without that stage and cannot
    /// take prompt-learning adapters (<see cref="AcceptsPromptLearning"/>).
    /// </para>
    /// </summary>
    public virtual Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        CheckInputs(inputIds, cache);
        return ActivePrompt is { } prompt
            ? prompt.Forward(this, inputIds, attentionMask, positionIds, cache)
            : Decode(inputIds, null, attentionMask, positionIds, cache);
    }

    /// <summary>
    /// <see cref="Forward(Tensor, Tensor?, Tensor?, KvCache?)"/> computing the logits of the last
    /// <paramref name="logitsToKeep"/> positions only (<c>(B, logitsToKeep, vocab)</c>; 0 keeps all), as transformers'
    /// <c>logits_to_keep</c> (<c>generate</c> passes 1, the default here) so the prefill does not project every prompt position
    /// onto the vocabulary. The built-in architectures apply the output head to the kept hidden states only
    /// (<see cref="KeptPositions"/>); an architecture that overrides <see cref="Forward(Tensor, Tensor?, Tensor?, KvCache?)"/>
    /// or <see cref="Decode"/> without reading it returns all positions, so callers index from the end.
    /// </summary>
    public Tensor ForwardLastLogits(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null, int logitsToKeep = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(logitsToKeep);
        var outer = _keep;
        _keep = (this, logitsToKeep);
        try
        {
            return Forward(inputIds, attentionMask, positionIds, cache);
        }
        finally
        {
            _keep = outer;
        }
    }

    /// <summary>The logits_to_keep of the <see cref="ForwardLastLogits"/> call running on
    /// this thread (it reaches <see cref="Decode"/> through the prompt-learning stage without changing its signature).</summary>
    [ThreadStatic]
    private static (CausalLM Model, int Keep) _keep;

    /// <summary>The last positions of <paramref name="hidden"/> <c>(B, T, C)</c> the output head is to project in this
    /// pass: all of them, or the last <c>logitsToKeep</c> (a view) inside
    /// <see cref="ForwardLastLogits"/>. Architectures call it on their final hidden
    /// states before the head (transformers: <c>hidden_states[:, slice(-logits_to_keep, None), :]</c>).</summary>
    protected Tensor KeptPositions(Tensor hidden)
    {
        var keep = ReferenceEquals(_keep.Model, this) ? _keep.Keep : 0;
        var t = hidden.shape[1];
        return keep <= 0 || keep >= t ? hidden.alias() : hidden.narrow(1, t - keep, keep);
    }

    /// <summary>
    /// The architecture's pass: logits for token ids <c>(B, T)</c>, or for input embeddings <c>(B, T, C)</c>
    /// (transformers' <c>inputs_embeds</c>: exactly one of <paramref name="inputIds"/> and
    /// <paramref name="inputsEmbeds"/> is given), with the mask, positions and cache of <see cref="Forward"/>. The
    /// built-in architectures implement this; <see cref="Forward"/> calls it after the prompt-learning stage.
    /// </summary>
    protected internal virtual Tensor Decode(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache) =>
        throw new NotSupportedException($"{GetType().Name} implements neither Forward nor Decode.");

    /// <summary>The prompt-learning adapter that enters <see cref="Forward"/> now (attached as the child module
    /// <c>prompt_encoder</c> by a prompt-learning method; null when none is attached, active or enabled).</summary>
    public IPromptLearner? ActivePrompt =>
        _internal_submodules.TryGetValue(PromptEncoderName, out var module) && module is IPromptLearner { IsActive: true } prompt ? prompt : null;

    /// <summary>The child module name prompt-learning state is attached under (PEFT's <c>prompt_encoder</c>).</summary>
    public const string PromptEncoderName = "prompt_encoder";

    /// <summary>Whether <see cref="Forward"/> runs the prompt-learning stage: the architecture implements
    /// <see cref="Decode"/> and leaves <see cref="Forward"/> to this class.</summary>
    public bool AcceptsPromptLearning =>
        GetType().GetMethod(nameof(Forward), [typeof(Tensor), typeof(Tensor), typeof(Tensor), typeof(KvCache)])?.DeclaringType == typeof(CausalLM)
        && GetType().GetMethod(nameof(Decode), System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public, [typeof(Tensor), typeof(Tensor), typeof(Tensor), typeof(Tensor), typeof(KvCache)])?.DeclaringType != typeof(CausalLM);

    /// <summary>The module attached under <paramref name="name"/> (a prompt-learning method's state), or null.</summary>
    internal nn.Module? Attached(string name) => _internal_submodules.TryGetValue(name, out var module) ? module : null;

    /// <summary>Attaches <paramref name="module"/> as the child <paramref name="name"/> (moved by <c>to()</c>, listed by
    /// <c>named_parameters()</c> as <c>{name}.…</c>).</summary>
    internal void Attach(string name, nn.Module module) => register_module(name, module);

    /// <summary>Detaches the child <paramref name="name"/> (not disposed).</summary>
    internal void Detach(string name) => _internal_submodules.Remove(name);

    /// <summary>
    /// The final hidden states <c>(B, T, C)</c> (after the final norm: what <see cref="OutputHead"/> reads), with the
    /// same arguments as <see cref="Forward"/> (no cache). Heads other than the LM head read them: a reward model's
    /// <c>score</c> (transformers' <c>*ForSequenceClassification</c>), PPO's value head. Architectures that do not
    /// expose them throw.
    /// </summary>
    public virtual Tensor HiddenStates(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null) =>
        throw new LoraException($"{GetType().Name} does not expose its hidden states, which a reward model or a value head reads; use a Llama, Qwen2 or GPT-2 family model.");

    /// <summary>Logits <c>(B, T, vocab)</c> of hidden states from <see cref="HiddenStates"/>: the output head.</summary>
    public Tensor LogitsOf(Tensor hidden) => OutputHead is nn.Module<Tensor, Tensor> head
        ? head.call(hidden)
        : throw new LoraException($"{GetType().Name} does not say what its output head is.");

    /// <summary>
    /// Gradient (activation) checkpointing: while training, each decoder block is recomputed in the backward pass
    /// instead of keeping its activations (transformers' <c>gradient_checkpointing_enable()</c>). Same gradients,
    /// less memory, one extra forward per block. Architectures that do not support it throw when it is turned on.
    /// </summary>
    public virtual bool GradientCheckpointing
    {
        get => false;
        set
        {
            if (value)
                throw new LoraException($"{GetType().Name} does not support gradient checkpointing.");
        }
    }

    /// <summary>A cache sized for this model, whose buffers are sized by the first pass and grow by doubling.</summary>
    public KvCache NewCache() => new(Config.NumLayers);

    /// <summary>A cache sized for this model whose buffers hold <paramref name="capacity"/> positions (prompt width +
    /// new tokens + a prompt-learning adapter's virtual tokens) before they grow: no copy while decoding.</summary>
    public KvCache NewCache(long capacity) => new(Config.NumLayers, capacity);

    /// <summary>The architecture family of <see cref="ModelConfig.ModelType"/> (null for a model declared in user code
    /// whose model_type no family reads): where its decoder layers and final norm are, PEFT's default targets.</summary>
    public virtual ModelFamily? Family => ModelFamilies.Find(Config.ModelType);

    /// <summary>How the linear layers are quantized (bitsandbytes 4-bit or LLM.int8()), or null for a dense model.
    /// Set by a quantized load (<see cref="FromPretrained(string, ScalarType, torch.Device?, QuantizationConfig?)"/>)
    /// and by <see cref="ModelQuantizer"/>; saved checkpoints carry it as <c>quantization_config</c>.</summary>
    public QuantizationConfig? Quantization { get; internal set; }

    /// <summary>The input embedding table, whose weight a tied output head (<c>tie_word_embeddings</c>) shares; null
    /// when the architecture does not say.</summary>
    public virtual EmbeddingLayer? InputEmbedding => null;

    /// <summary>
    /// <c>to()</c>: converts or moves the children, which hold every tensor. TorchSharp's own epilog is not used: it
    /// indexes this class's public properties by name, which fails on the covariant <see cref="Config"/> override. A
    /// model therefore keeps its tensors in child modules. TorchSharp also converts each module's tensors separately,
    /// which would leave a tied output head with a copy of the embedding matrix: it shares the converted one again.
    /// </summary>
    protected override void _toEpilog(ScalarType? dtype, torch.Device? device, bool non_blocking)
    {
        if (dtype is null && device is null)
            throw new ArgumentNullException(nameof(dtype), "dtype and device are both null.");
        if (named_parameters(recurse: false).Any() || named_buffers(recurse: false).Any())
            throw new NotSupportedException($"{GetType().Name} registers tensors of its own; keep them in a child module so to() can move them.");
        foreach (var (_, child) in named_children())
        {
            if (dtype is { } t && device is not null)
                child.to(device, t, non_blocking);
            else if (dtype is { } only)
                child.to(only, non_blocking);
            else
                child.to(device!, non_blocking);
        }

        if (device is not null)
        {
            _deviceType = device.type;
            _deviceIndex = device.index;
        }

        if (Config.TieWordEmbeddings && OutputHead is LinearLayer head && InputEmbedding is { } embedding
            && head.Base is DenseLinear dense && !ReferenceEquals(dense.WeightParameter, embedding.Weight))
        {
            head.ReplaceBase(new DenseLinear(embedding.Weight, dense.Bias));
            dense.WeightParameter.Dispose();
        }
    }

    /// <summary>The output projection (<c>lm_head</c>), which PEFT's <c>all-linear</c> leaves out; null when the
    /// architecture does not say (then the module named <c>lm_head</c> is left out).</summary>
    public virtual nn.Module? OutputHead => null;

    /// <summary>
    /// Loads a Hugging Face model directory (<c>config.json</c> + <c>model.safetensors</c> or a sharded index): the
    /// <c>model_type</c> picks the family (<see cref="ModelFamilies"/>), which builds the model in
    /// <paramref name="dtype"/> on <paramref name="device"/> (CPU when null); every weight is loaded strictly (see
    /// <see cref="LoadWeights(string)"/>). The model is in eval mode.
    /// <para>
    /// With <paramref name="quantization"/> (e.g. <see cref="QuantizationConfig.QLoRA"/>), every linear layer but the
    /// output head (and <see cref="QuantizationConfig.SkipModules"/>) is quantized as it is read, one weight at a
    /// time, so the dense model is never in memory. A bitsandbytes pre-quantized checkpoint (<c>quantization_config</c>
    /// in config.json, e.g. <c>*-bnb-4bit</c>) loads quantized without the argument; given one, it must store weights
    /// the same way, and its compute dtype and int8 threshold apply. See docs/quantization.md.
    /// </para>
    /// </summary>
    /// <exception cref="LoraException">Bad or unsupported config.json, unsupported dtype, or a checkpoint that does
    /// not match the model (the message lists the keys or shapes at fault).</exception>
    public static CausalLM FromPretrained(string directory, ScalarType dtype = ScalarType.Float32, torch.Device? device = null, QuantizationConfig? quantization = null) =>
        FromPretrained<CausalLM>(directory, dtype, device, quantization);

    /// <summary>
    /// Loads a Hugging Face model directory into a model built by <paramref name="create"/> (a built-in architecture
    /// or a class deriving from one, e.g. a <c>[Lora]</c> model): checks the dtype, reads <c>config.json</c>, requires
    /// its config type to be <typeparamref name="TConfig"/>, builds the model on <paramref name="device"/> and loads
    /// every weight strictly. The model is disposed if anything fails.
    /// </summary>
    /// <exception cref="LoraException">As <see cref="FromPretrained(string, ScalarType, torch.Device?, QuantizationConfig?)"/>, or a config
    /// of another architecture.</exception>
    public static TModel FromPretrained<TModel, TConfig>(string directory, ScalarType dtype, torch.Device? device, Func<TConfig, ScalarType, torch.Device, TModel> create, QuantizationConfig? quantization = null)
        where TModel : CausalLM
        where TConfig : ModelConfig
    {
        ArgumentNullException.ThrowIfNull(create);
        if (!SupportedDTypes.Contains(dtype))
            throw new LoraException($"dtype {dtype} is not supported for models (use {string.Join(", ", SupportedDTypes)}).");
        if (!Directory.Exists(directory))
            throw new LoraException($"{directory}: model directory not found.");
        var loaded = ModelConfigLoader.Load(directory);
        if (loaded is not TConfig config)
            throw new LoraException($"{loaded.Source}: model_type '{loaded.ModelType}' is read as a {loaded.GetType().Name}; {typeof(TModel).Name} is built from a {typeof(TConfig).Name}.");
        var effective = EffectiveQuantization(directory, quantization);
        device ??= TorchRuntime.Initialize(DeviceSpec.Cpu);
        TModel model;
        using (effective is null ? null : DeferredStorage.Begin())
            model = create(config, dtype, device);
        try
        {
            model.Quantization = effective;
            model.LoadWeights(directory);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The checkpoint's own quantization (config.json) or the requested one; both must store weights alike.</summary>
    private static QuantizationConfig? EffectiveQuantization(string directory, QuantizationConfig? requested)
    {
        requested?.Validate();
        var stored = QuantizationConfig.FromModelDirectory(directory);
        if (stored is null)
            return requested;
        if (requested is null)
            return stored;
        // The block size is not part of quantization_config: each saved weight records its own.
        if (stored.Type != requested.Type || stored.DoubleQuant != requested.DoubleQuant)
            throw new LoraException($"{Path.Combine(directory, ModelConfigLoader.FileName)}: the checkpoint is already quantized as {stored}; it cannot be loaded as {requested}: drop the quantization option, or quantize the dense checkpoint.");
        return stored with { ComputeDType = requested.ComputeDType, Int8Threshold = requested.Int8Threshold };
    }

    /// <summary><see cref="FromPretrained(string, ScalarType, torch.Device?, QuantizationConfig?)"/> requiring the
    /// architecture <typeparamref name="TModel"/> (checked before any weight is read).</summary>
    protected static TModel FromPretrained<TModel>(string directory, ScalarType dtype, torch.Device? device, QuantizationConfig? quantization = null)
        where TModel : CausalLM =>
        FromPretrained<TModel, ModelConfig>(directory, dtype, device, static (config, dt, dev) =>
        {
            var family = ModelFamilies.Find(config.ModelType) ?? throw new LoraException($"{config.Source}: model_type '{config.ModelType}' has no architecture.");
            var model = family.Create(config, dt, dev);
            if (model is TModel typed)
                return typed;
            model.Dispose();
            throw new LoraException($"{config.Source}: model_type '{config.ModelType}' is a {family.ModelClass.Name}, not a {typeof(TModel).Name}.");
        }, quantization);

    /// <summary>
    /// Fills every parameter from the checkpoint in <paramref name="directory"/>, strictly: each parameter must be in
    /// the checkpoint with the same shape, and each checkpoint tensor must be used, except a tied <c>lm_head.weight</c>
    /// and known non-parameter buffers (<see cref="IsKnownBuffer"/>). Tensors are read one at a time from the
    /// memory-mapped files and converted to each parameter's dtype and device, so peak memory stays near the model's
    /// size. Checkpoints saved from the base model (keys without <c>model.</c>/<c>transformer.</c>) are accepted.
    /// </summary>
    public void LoadWeights(string directory)
    {
        using var checkpoint = SafeTensorsCheckpoint.Open(directory);
        CheckpointLoader.Load(this, checkpoint, directory);
    }

    /// <summary><see cref="LoadWeights(string)"/> from an open checkpoint.</summary>
    public void LoadWeights(SafeTensorsCheckpoint checkpoint) => CheckpointLoader.Load(this, checkpoint, checkpoint.Source);

    /// <summary>
    /// Random weights as transformers' <c>_init_weights</c>: linear and embedding weights ~ N(0, initializer_range²),
    /// biases 0, norm weights 1.
    /// </summary>
    public void InitializeWeights(Generator? generator = null)
    {
        using var noGrad = no_grad();
        var std = Config.InitializerRange;
        foreach (var module in modules())
        {
            switch (module)
            {
                case LinearLayer linear:
                    linear.Base.InitializeWeights(std, generator);
                    break;
                case EmbeddingLayer embedding:
                    embedding.Weight.normal_(0, std, generator);
                    break;
                case RmsNorm rms:
                    rms.Weight.fill_(1);
                    break;
                case LayerNorm layerNorm:
                    layerNorm.weight?.fill_(1);
                    layerNorm.bias?.zero_();
                    break;
            }
        }
    }

    /// <summary>The prefix of the base model's parameters (<c>model</c>, <c>transformer</c>).</summary>
    protected abstract string BaseModelPrefix { get; }

    /// <summary>True for a checkpoint key that is a known non-parameter buffer, skipped when loading.</summary>
    protected virtual bool IsKnownBuffer(string key) => false;

    internal string BasePrefix => BaseModelPrefix;

    internal bool IsIgnorable(string key) =>
        IsKnownBuffer(key) || (Config.TieWordEmbeddings && key == "lm_head.weight");

    /// <summary>
    /// The final hidden states <c>(B, T, C)</c>, before <see cref="OutputHead"/>, or null when the architecture does not
    /// expose them. The training loss uses them to fuse the head with the cross-entropy
    /// (<see cref="Training.CausalLMLoss.ModelTokenSum"/>), so the logits of the whole batch never exist at once.
    /// Like <see cref="HiddenStates"/>, this is the architecture's pass alone: an active prompt-learning adapter
    /// (<see cref="ActivePrompt"/>) does not enter it, so the loss uses the full <see cref="Forward"/> then.
    /// </summary>
    public virtual Tensor? ForwardHidden(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null) => null;

    /// <summary>Argument checks shared by the architectures' <see cref="Forward"/>.</summary>
    protected void CheckInputs(Tensor inputIds, KvCache? cache)
    {
        if (inputIds.ndim != 2)
            throw new ArgumentException($"input_ids must be (B, T), got ({string.Join(", ", inputIds.shape)}).", nameof(inputIds));
        if (inputIds.dtype != ScalarType.Int64 && inputIds.dtype != ScalarType.Int32)
            throw new ArgumentException($"input_ids must be int64, got {inputIds.dtype}.", nameof(inputIds));
        if (cache is not null && cache.Layers != Config.NumLayers)
            throw new ArgumentException($"the cache has {cache.Layers} layers, the model {Config.NumLayers}; use NewCache().", nameof(cache));
    }
}
