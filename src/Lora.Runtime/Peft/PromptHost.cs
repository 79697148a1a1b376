using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// Where a model keeps its prompt-learning adapters: the child module <c>prompt_encoder</c> of a
/// <see cref="CausalLM"/> (PEFT's <c>PeftModel.prompt_encoder</c>, a <c>ModuleDict</c> by adapter name), with the same
/// bookkeeping as any adapter host (active, disabled, deleted), so model-wide operations, training and saving treat
/// prompt-learning adapters like layer adapters. One adapter applies at a time (PEFT: one active prompt-learning
/// adapter). They are inputs, not weights: merging is refused.
/// </summary>
public sealed class PromptHost : AdapterHost<PromptEncoder>, IPromptLearner
{
    private PromptHost()
        : base(nameof(PromptHost))
    {
    }

    /// <summary>The model's host, attached on first use.</summary>
    /// <exception cref="LoraException">The architecture overrides <see cref="CausalLM.Forward"/> itself, so virtual
    /// tokens would never reach it.</exception>
    public static PromptHost For(CausalLM model)
    {
        if (model.Attached(CausalLM.PromptEncoderName) is PromptHost existing)
            return existing;
        if (!model.AcceptsPromptLearning)
            throw new LoraException($"{model.GetType().Name} overrides CausalLM.Forward, so prompt-learning adapters (prefix tuning, prompt tuning, P-tuning) cannot enter its forward pass; implement CausalLM.Decode instead, as the built-in architectures do.");
        var host = new PromptHost();
        model.Attach(CausalLM.PromptEncoderName, host);
        return host;
    }

    public bool IsActive => AdaptersApply;

    /// <summary>The adapter that applies now.</summary>
    public PromptEncoder Active
    {
        get
        {
            var active = UnmergedActiveAdapters.ToList();
            return active.Count == 1 ? active[0]
                : throw new LoraException($"{active.Count} prompt-learning adapters are active ({string.Join(", ", ActiveAdapters)}); activate one (SetActiveAdapters): their virtual tokens cannot be combined.");
        }
    }

    public Tensor Forward(CausalLM model, Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache) =>
        Active.Forward(model, inputIds, attentionMask, positionIds, cache);

    public override Tensor forward(Tensor input) =>
        throw new NotSupportedException("prompt-learning adapters enter CausalLM.Forward; they are not called as a layer.");

    protected override void MergeOne(PromptEncoder adapter, bool safe) =>
        throw new LoraException($"a {adapter.MethodName} adapter adds virtual tokens to the input, not a change of weights: it cannot be merged (PEFT cannot either); keep it as an adapter.");

    protected override void UnmergeOne(PromptEncoder adapter)
    {
    }
}
