namespace Lora;

/// <summary>
/// What every attribute declaring a prompt-learning plan has (<see cref="PrefixTuningAttribute"/>,
/// <see cref="PromptTuningAttribute"/>, <see cref="PTuningAttribute"/>): how many virtual tokens. These adapters are
/// not on layers: they are one encoder attached to the model (<c>prompt_encoder</c>) that enters its forward pass, so
/// there are no targets; the model's architecture must leave <c>CausalLM.Forward</c> to the runtime (LORA0022).
/// </summary>
public abstract class PromptPlanAttribute : PeftPlanAttribute
{
    /// <summary>PEFT <c>num_virtual_tokens</c>; must be positive (LORA0021).</summary>
    public int VirtualTokens { get; set; } = 20;
}
