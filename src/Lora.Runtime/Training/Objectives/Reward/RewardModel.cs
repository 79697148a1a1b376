using Lora.Models;
using Lora.Modules;
using Lora.Peft;
using Lora.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Reward;

/// <summary>
/// A causal LM as a reward model: transformers' <c>*ForSequenceClassification</c> with <c>num_labels = 1</c>
/// (<c>modeling_layers.py</c>, <c>GenericForSequenceClassification</c>): a head <c>score = nn.Linear(hidden, 1,
/// bias=False)</c> on the final hidden states, read at the rightmost token that is not the pad token. The head is a
/// child module named <c>score</c> of the model itself, so its parameter is <c>score.weight</c>, and a PEFT adapter
/// of task type <c>SEQ_CLS</c> saves it under <c>modules_to_save</c> as <c>base_model.model.score.weight</c>: the
/// layout <c>PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base, num_labels=1), dir)</c>
/// reads.
/// </summary>
public static class RewardModel
{
    /// <summary>The head's module name (transformers' <c>score</c>).</summary>
    public const string ScoreModuleName = "score";

    /// <summary>
    /// Adds a fresh <c>score</c> head to <paramref name="model"/> (initialised as transformers' <c>_init_weights</c>:
    /// N(0, initializer_range²)), in the dtype and on the device of the input embedding. Attach it before injecting or
    /// loading a SEQ_CLS adapter, whose <c>modules_to_save</c> then trains or fills it.
    /// </summary>
    /// <exception cref="LoraException">The model already has a score head.</exception>
    public static LinearLayer AttachScoreHead(CausalLM model, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (Find(model) is not null)
            throw new LoraException("the model already has a score head.");
        var reference = model.InputEmbedding?.Weight ?? model.parameters().First();
        var head = new LinearLayer(model.Config.HiddenSize, 1, hasBias: false, reference.dtype, reference.device);
        using (no_grad())
            head.Weight.normal_(0, model.Config.InitializerRange, generator);
        model.register_module(ScoreModuleName, head);
        return head;
    }

    /// <summary>The model's score head, or null.</summary>
    public static LinearLayer? Find(CausalLM model) =>
        model.named_children().FirstOrDefault(c => c.name == ScoreModuleName).module as LinearLayer;

    /// <summary>
    /// Rewards <c>(B)</c> (fp32) of <paramref name="inputIds"/> <c>(B, T)</c>: <c>score(h)</c> at the rightmost token
    /// that is not <paramref name="padTokenId"/> (<c>(arange(T) · (ids ≠ pad)).argmax(-1)</c>, transformers' pooling,
    /// which handles left and right padding alike).
    /// </summary>
    public static Tensor Rewards(CausalLM model, Tensor inputIds, Tensor? attentionMask, long padTokenId)
    {
        var head = Find(model) ?? throw new LoraException("the model has no score head: attach one (RewardModel.AttachScoreHead) or load a reward model (RewardModel.Load).");
        using var scope = NewDisposeScope();
        var hidden = model.HiddenStates(inputIds, attentionMask);                              // (B, T, C)
        var scores = head.call(hidden).squeeze(-1).to(ScalarType.Float32);                     // (B, T)
        var t = inputIds.shape[1];
        var nonPad = inputIds.ne(padTokenId).to(ScalarType.Int64).to(scores.device);
        var last = (arange(t, dtype: ScalarType.Int64, device: scores.device) * nonPad).argmax(-1); // (B)
        return scores.gather(1, last.unsqueeze(1)).squeeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>The adapter config of a reward model: task type <c>SEQ_CLS</c> and <c>score</c> in
    /// <c>modules_to_save</c> (PEFT adds it for that task, TRL recommends it for a causal LM base).</summary>
    public static TConfig Configure<TConfig>(TConfig config)
        where TConfig : TunerConfig
    {
        ArgumentNullException.ThrowIfNull(config);
        var saved = (config.ModulesToSave ?? []).ToList();
        if (!saved.Contains(ScoreModuleName))
            saved.Add(ScoreModuleName);
        return config with { TaskType = ModulesToSave.SequenceClassificationTask, ModulesToSave = saved };
    }

    /// <summary>
    /// Loads a reward model: the base checkpoint in <paramref name="modelDirectory"/>, a score head, and the SEQ_CLS
    /// adapter in <paramref name="adapterDirectory"/> (its <c>modules_to_save</c> fills the head). The model is in
    /// eval mode.
    /// </summary>
    /// <exception cref="LoraException">The adapter is not a reward model's (no <c>score</c> in modules_to_save), or it
    /// does not fit the base.</exception>
    public static CausalLM Load(string modelDirectory, string adapterDirectory, Device? device = null, ScalarType dtype = ScalarType.Float32,
        QuantizationConfig? quantization = null, Action<string>? warnings = null)
    {
        var config = PeftConfigFile.Read(adapterDirectory, warnings);
        if (config is not TunerConfig { ModulesToSave: { } saved } || !saved.Contains(ScoreModuleName))
            throw new LoraException($"{adapterDirectory}: not a reward model adapter (its adapter_config.json has no \"{ScoreModuleName}\" in modules_to_save; train one with `lora reward`).");
        var model = CausalLM.FromPretrained(modelDirectory, dtype, device, quantization?.Skipping(saved));
        try
        {
            AttachScoreHead(model);
            PeftAdapter.Load(model, adapterDirectory, warnings: warnings);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
