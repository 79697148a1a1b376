using Lora.Peft;
using Lora.Tuners.IA3;

namespace Lora;

/// <summary>
/// Declares an IA3 plan for a model, checked at build time like <see cref="LoraAttribute"/>: learned vectors on the
/// <see cref="AdapterPlanAttribute.Targets"/> that scale the input of the <see cref="FeedForward"/> layers and the
/// output of the others (PEFT's <c>IA3Config</c>).
/// <code>
/// [IA3(Targets = "k_proj|v_proj|down_proj", FeedForward = "down_proj")]
/// public partial class LlamaIa3 : LlamaForCausalLM { }
/// </code>
/// Only linear layers can be targets. <see cref="FeedForward"/> must select a subset of the targets (LORA0014).
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
[Adapts(typeof(LinearAdapter))]
public sealed class IA3Attribute : AdapterPlanAttribute
{
    /// <summary>The metadata name the generator and analyzers look the attribute up by.</summary>
    public const string MetadataName = "Lora.IA3Attribute";

    /// <summary>The targets whose input is scaled (PEFT <c>feedforward_modules</c>), with the same regex semantics as
    /// <see cref="AdapterPlanAttribute.Targets"/>. Unset: the model family's default (<c>down_proj</c> for Llama), as
    /// PEFT does.</summary>
    public string? FeedForward { get; set; }

    /// <summary>PEFT <c>init_ia3_weights</c>: vectors start at 1, so the adapter starts as a no-op (false: N(0, 1)).</summary>
    public bool InitToOnes { get; set; } = true;

    public override Ia3Config ToConfig() => new()
    {
        TargetModules = TargetModulesOf(Targets),
        FeedforwardModules = TargetModulesOf(FeedForward),
        InitIa3Weights = InitToOnes,
        ModulesToSave = ModulesToSaveList(),
    };
}
