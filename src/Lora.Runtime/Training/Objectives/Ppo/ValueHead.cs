using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Ppo;

/// <summary>
/// PPO's critic: TRL's <c>ValueHead</c> (<c>trl/experimental/ppo/modeling_value_head.py</c>: <c>summary =
/// nn.Linear(hidden_size, 1)</c>, PyTorch's default init, computed in fp32), a child module <c>v_head</c> of the model,
/// on final hidden states of one of two backbones:
/// <list type="bullet">
/// <item><see cref="AttachSeparate"/> (the CLI's default): its own adapter <see cref="CriticAdapterName"/> on the same
/// base, active only while values are computed — TRL's experimental <c>PPOTrainer</c> takes a separate value model
/// (<c>PolicyAndValueWrapper</c>: the value backbone is not the policy's), so the value loss never moves the policy;
/// here the separate backbone is a second adapter of the policy's method, not a second copy of the base.</item>
/// <item><see cref="Attach"/>: the policy's own hidden states, as TRL's legacy <c>AutoModelForCausalLMWithValueHead</c>
/// lays it out (one backbone for policy and critic; the value loss trains the policy adapter too).</item>
/// </list>
/// The head is saved as <c>value_head.safetensors</c> with TRL's keys <c>v_head.summary.weight</c> /
/// <c>v_head.summary.bias</c>; a separate critic's adapter as a PEFT adapter in the <c>critic/</c> subdirectory (PEFT's
/// layout for a named adapter).
/// </summary>
public sealed class ValueHead : nn.Module<Tensor, Tensor>
{
    /// <summary>The module name on the model (TRL's <c>v_head</c>).</summary>
    public const string ModuleName = "v_head";

    /// <summary>The file beside the adapter.</summary>
    public const string FileName = "value_head.safetensors";

    /// <summary>The separate critic's adapter name (and its subdirectory beside the policy adapter).</summary>
    public const string CriticAdapterName = "critic";

    [TorchSharp.Utils.ComponentName(Name = "summary")]
    public Linear Summary;

    private CausalLM? _model;
    private string _policyAdapter = Peft.PeftAdapter.DefaultName;
    private Peft.PeftConfig? _criticConfig;

    /// <summary>The critic's own adapter (<see cref="CriticAdapterName"/>), or null when it reads the policy's hidden states.</summary>
    public string? CriticAdapter { get; private set; }

    private ValueHead(long hiddenSize, Device device)
        : base(ModuleName)
    {
        Summary = nn.Linear(hiddenSize, 1, hasBias: true, device: device, dtype: ScalarType.Float32);
        RegisterComponents();
    }

    /// <summary>Adds a fresh value head to <paramref name="model"/> (fp32, on its device).</summary>
    public static ValueHead Attach(CausalLM model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.named_children().Any(c => c.name == ModuleName))
            throw new LoraException($"the model already has a {ModuleName}.");
        var head = new ValueHead(model.Config.HiddenSize, (model.InputEmbedding?.Weight ?? model.parameters().First()).device);
        model.register_module(ModuleName, head);
        return head;
    }

    /// <summary>
    /// Adds a fresh value head with its own backbone: adapter <see cref="CriticAdapterName"/> on <paramref name="model"/>'s
    /// base — loaded from <paramref name="initDirectory"/> (a PEFT adapter directory: a PPO output's <c>critic/</c>,
    /// or the policy's initial adapter, so the critic starts from the policy's features), else a fresh adapter of
    /// <paramref name="policyConfig"/> (without its modules_to_save). <paramref name="policyAdapter"/> stays the active
    /// adapter; the critic's is active only inside <see cref="Values"/>.
    /// </summary>
    public static ValueHead AttachSeparate(CausalLM model, Peft.PeftConfig policyConfig, string? initDirectory = null, string policyAdapter = Peft.PeftAdapter.DefaultName)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policyConfig);
        if (model.AdapterParameters(CriticAdapterName).Any())
            throw new LoraException($"the model already has an adapter named '{CriticAdapterName}'.");
        var config = initDirectory is not null
            ? Peft.PeftAdapter.Load(model, initDirectory, CriticAdapterName)
            : policyConfig is Peft.TunerConfig tuner ? tuner with { ModulesToSave = null }
            : throw new LoraException($"a separate critic needs a layer-adapting policy method (LoRA, DoRA, IA3), not {policyConfig.PeftType}.");
        if (initDirectory is null)
            Peft.PeftInjector.Inject(model, config, CriticAdapterName);
        model.SetActiveAdapters(policyAdapter);
        var head = Attach(model);
        (head._model, head._policyAdapter, head._criticConfig, head.CriticAdapter) = (model, policyAdapter, config, CriticAdapterName);
        return head;
    }

    /// <summary>
    /// <see cref="AttachSeparate"/> with the critic initialised from a reward model on the same base, as TRL's PPO
    /// script builds its value model (<c>AutoModelForSequenceClassification.from_pretrained(reward_model_path)</c>,
    /// trl/scripts/ppo.py): the critic adapter takes the reward adapter's weights (its LoRA, without the
    /// <c>score</c> module it saves), and the value head the reward head's weight (<c>score</c> has no bias; the head's
    /// starts at 0), so the first values are the reward model's score at every position.
    /// </summary>
    /// <param name="model">The policy (base + its adapter).</param>
    /// <param name="rewardAdapterDirectory">A reward model adapter (<c>lora reward</c>'s output) trained on this base.</param>
    /// <param name="policyAdapter">The policy's adapter, active outside <see cref="Values"/>.</param>
    public static ValueHead AttachFromRewardModel(CausalLM model, string rewardAdapterDirectory, string policyAdapter = Peft.PeftAdapter.DefaultName)
    {
        ArgumentNullException.ThrowIfNull(model);
        var file = Peft.PeftConfigFile.Read(rewardAdapterDirectory);
        if (file is not Peft.TunerConfig { ModulesToSave: { } saved } reward || !saved.Contains(Reward.RewardModel.ScoreModuleName))
            throw new LoraException($"{rewardAdapterDirectory}: not a reward model adapter (no \"{Reward.RewardModel.ScoreModuleName}\" in modules_to_save).");
        var config = reward with { ModulesToSave = null, TaskType = "CAUSAL_LM" };
        var head = AttachSeparate(model, config, initDirectory: null, policyAdapter);
        // The reward adapter's layers fill the critic (strictly, as any adapter loads); its score head fills the value head.
        const string scoreKey = "base_model.model." + Reward.RewardModel.ScoreModuleName + ".weight";
        Peft.PeftAdapter.FillLayerAdapter(model, rewardAdapterDirectory, config, CriticAdapterName, key => key == scoreKey);
        var path = Peft.PeftAdapter.WeightsPath(rewardAdapterDirectory);
        using var weights = SafeTensorsFile.Open(path);
        var scoreName = weights.Tensors.Keys.FirstOrDefault(k => Peft.AdapterKeys.WithPeftPrefix(k) == scoreKey);
        if (scoreName is null || !weights.Tensors[scoreName].Shape.SequenceEqual(head.Summary.weight!.shape))
            throw new LoraException($"{path}: \"{scoreKey}\" is missing or not shaped (1, {model.Config.HiddenSize}).");
        using var noGrad = no_grad();
        using (var value = weights.Load(scoreName, head.Summary.weight!.dtype, head.Summary.weight.device))
            head.Summary.weight.copy_(value);
        head.Summary.bias!.zero_();
        return head;
    }

    /// <summary>Values <c>(B, W)</c> of the <paramref name="width"/> positions from <paramref name="start"/>: from
    /// <paramref name="policyHidden"/> <c>(B, T, C)</c> when the critic shares the policy's backbone, else from the
    /// critic adapter's own forward pass over <paramref name="inputIds"/> / <paramref name="attentionMask"/>.</summary>
    public Tensor Values(CausalLM model, Tensor policyHidden, Tensor inputIds, Tensor attentionMask, long start, long width)
    {
        using var scope = NewDisposeScope();
        var hidden = CriticAdapter is null ? policyHidden : CriticHidden(model, inputIds, attentionMask);
        return call(hidden[.., (int)start..(int)(start + width), ..]).MoveToOuterDisposeScope();
    }

    private Tensor CriticHidden(CausalLM model, Tensor inputIds, Tensor attentionMask)
    {
        model.SetActiveAdapters(CriticAdapter!);
        try
        {
            return model.HiddenStates(inputIds, attentionMask);
        }
        finally
        {
            model.SetActiveAdapters(_policyAdapter);
        }
    }

    /// <summary>Values <c>(B, T)</c> of hidden states <c>(B, T, C)</c>.</summary>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return Summary.call(hidden.to(ScalarType.Float32)).squeeze(-1).MoveToOuterDisposeScope();
    }

    /// <summary>The head's parameters under TRL's keys.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> NamedParameters =>
        named_parameters().Select(p => ($"{ModuleName}.{p.name}", p.parameter)).ToList();

    /// <summary>Everything the critic trains: the head (<see cref="NamedParameters"/>) and a separate critic's adapter
    /// (under <c>critic.</c> + its PEFT keys).</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> TrainableParameters =>
        CriticAdapter is null
            ? NamedParameters
            : [.. NamedParameters, .. _model!.AdapterParameters(CriticAdapter).Select(p => ($"{CriticAdapter}.{p.PeftKey}", p.Parameter))];

    /// <summary>Writes <see cref="FileName"/> into <paramref name="directory"/>, and a separate critic's adapter into
    /// its <c>critic/</c> subdirectory.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        using var scope = NewDisposeScope();
        var tensors = NamedParameters.ToDictionary(p => p.Name, p => p.Parameter.detach().cpu().contiguous(), StringComparer.Ordinal);
        SafeTensorsWriter.Write(Path.Combine(directory, FileName), tensors);
        if (CriticAdapter is not null)
            Peft.PeftAdapter.Save(_model!, directory, _criticConfig!, CriticAdapter);
    }

    /// <summary>Reads <see cref="FileName"/> from <paramref name="directory"/> (strict keys and shapes), and a separate
    /// critic's adapter from its <c>critic/</c> subdirectory.</summary>
    public void Load(string directory)
    {
        LoadHead(directory);
        if (CriticAdapter is not null)
            Peft.PeftAdapter.LoadWeights(_model!, Peft.PeftAdapter.DirectoryFor(directory, CriticAdapter), CriticAdapter);
    }

    /// <summary>Reads only <see cref="FileName"/> (the head) from <paramref name="directory"/>: a separate critic's adapter
    /// was loaded by <see cref="AttachSeparate"/>.</summary>
    public void LoadHeadOnly(string directory) => LoadHead(directory);

    private void LoadHead(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new LoraException($"{path}: file not found (PPO checkpoints hold the value head beside the adapter).");
        using var file = SafeTensorsFile.Open(path);
        using var noGrad = no_grad();
        foreach (var (name, parameter) in NamedParameters)
        {
            if (!file.Tensors.TryGetValue(name, out var entry))
                throw new LoraException($"{path}: missing \"{name}\".");
            if (!entry.Shape.SequenceEqual(parameter.shape))
                throw new LoraException($"{path}: \"{name}\" has shape ({string.Join(", ", entry.Shape)}), the value head needs ({string.Join(", ", parameter.shape)}).");
            using var value = file.Load(name, parameter.dtype, parameter.device);
            parameter.copy_(value);
        }
    }
}
