using Lora.Peft;

namespace Lora;

/// <summary>
/// What every attribute declaring a PEFT plan on a model class has: the adapter's name and the plan as a config.
/// Layer-adapting methods derive from <see cref="AdapterPlanAttribute"/> (targets), prompt-learning methods from
/// <see cref="PromptPlanAttribute"/> (virtual tokens). The source generator checks the plan at build time and makes
/// the class an <see cref="IPeftModel"/> (docs/generator.md).
/// </summary>
public abstract class PeftPlanAttribute : Attribute
{
    /// <summary>The adapter's name: <c>default</c> is saved in the adapter directory itself, any other name in a
    /// subdirectory of that name (PEFT's layout). Unique per class.</summary>
    public string AdapterName { get; set; } = PeftAdapter.DefaultName;

    /// <summary>The plan as the method's config (targets in this product's leaf-or-path form: saved adapters list
    /// what they resolved to).</summary>
    public abstract PeftConfig ToConfig();
}
