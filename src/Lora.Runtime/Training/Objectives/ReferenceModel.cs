using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives;

/// <summary>
/// Where the reference policy of DPO, PPO and GRPO comes from. TRL's rule (<c>dpo_trainer.py</c>,
/// <c>grpo_trainer.py</c>: "When training a PEFT adapter, how we obtain the reference depends on the setup"): a new
/// adapter's reference is the same model with its adapters disabled (<see cref="DisabledAdapters"/>, PEFT's
/// <c>disable_adapter()</c>); an adapter trained further starts from a frozen copy of itself, loaded as another
/// adapter (<see cref="Adapter"/>, TRL's <c>"ref"</c>); or a separate model (<see cref="Separate"/>, TRL's
/// <c>ref_model</c>). Reference outputs are computed under no_grad.
/// </summary>
public abstract class ReferenceModel
{
    private ReferenceModel()
    {
    }

    /// <summary>The policy with every adapter off: the base model (the default for a new adapter).</summary>
    public static ReferenceModel DisabledAdapters { get; } = new Disabled();

    /// <summary>Adapter <paramref name="referenceAdapter"/> of the same model, active instead of
    /// <paramref name="policyAdapter"/> while the reference runs (a frozen copy of an initial adapter, or a given
    /// reference adapter).</summary>
    public static ReferenceModel Adapter(string referenceAdapter, string policyAdapter = Peft.PeftAdapter.DefaultName) => new Named(referenceAdapter, policyAdapter);

    /// <summary>A separate model (same tokenizer and vocabulary), kept in eval mode.</summary>
    public static ReferenceModel Separate(CausalLM reference) => new Other(reference ?? throw new ArgumentNullException(nameof(reference)));

    /// <summary>What the reference is, for messages.</summary>
    public abstract string Description { get; }

    /// <summary>The reference's logits <c>(B, T, V)</c> (no grad).</summary>
    public Tensor Logits(CausalLM policy, Tensor inputIds, Tensor? attentionMask)
    {
        using var noGrad = no_grad();
        return Run(policy, m => m.Forward(inputIds, attentionMask));
    }

    /// <summary>Runs <paramref name="forward"/> on the reference (no grad is the caller's business).</summary>
    public abstract Tensor Run(CausalLM policy, Func<CausalLM, Tensor> forward);

    private sealed class Disabled : ReferenceModel
    {
        public override string Description => "the policy with its adapters disabled";

        public override Tensor Run(CausalLM policy, Func<CausalLM, Tensor> forward)
        {
            using var off = policy.DisableAdapters();
            return forward(policy);
        }
    }

    private sealed class Named(string reference, string policy) : ReferenceModel
    {
        public override string Description => $"adapter '{reference}'";

        public override Tensor Run(CausalLM model, Func<CausalLM, Tensor> forward)
        {
            model.SetActiveAdapters(reference);
            try
            {
                return forward(model);
            }
            finally
            {
                model.SetActiveAdapters(policy);
            }
        }
    }

    private sealed class Other(CausalLM reference) : ReferenceModel
    {
        public override string Description => $"a separate {reference.GetType().Name}";

        public override Tensor Run(CausalLM policy, Func<CausalLM, Tensor> forward)
        {
            reference.eval();
            return forward(reference);
        }
    }
}
