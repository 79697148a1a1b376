using Lora.Peft;
using Lora.Tuners.LoRA;

namespace Lora;

/// <summary>
/// Declares a LoRA plan for a model, checked at build time. Put it on a <c>partial</c> class deriving from a model
/// (<see cref="Models.CausalLM"/>): the Lora source generator resolves <see cref="AdapterPlanAttribute.Targets"/>
/// against the base type's module tree and emits typed injection and the state-dict map (see docs/generator.md).
/// Invalid plans (a target matching nothing or a non-adaptable layer, a bad regex, R &lt;= 0, ...) are build errors
/// LORA0001..LORA0010.
/// <code>
/// [Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj", Dropout = 0.05)]
/// public partial class CodeLlamaLora : LlamaForCausalLM { }
/// </code>
/// Linear layers and embedding tables (e.g. <c>"embed_tokens|q_proj|v_proj"</c>; not with <see cref="UseDora"/>) can
/// be targets. Several plan attributes declare several adapters; each needs its own
/// <see cref="PeftPlanAttribute.AdapterName"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
[Adapts(typeof(LinearAdapter), typeof(EmbeddingAdapter))]
public sealed class LoraAttribute : AdapterPlanAttribute
{
    /// <summary>The metadata name the generator and analyzers look the attribute up by.</summary>
    public const string MetadataName = "Lora.LoraAttribute";

    /// <summary>Rank r of the update <c>ΔW = B·A</c> (PEFT <c>r</c>); must be positive.</summary>
    public int R { get; set; } = 8;

    /// <summary>α: the update is scaled by α/r, or α/√r with <see cref="UseRsLora"/> (PEFT <c>lora_alpha</c>); must be positive.</summary>
    public double Alpha { get; set; } = 8;

    /// <summary>Dropout on the adapter's input during training (PEFT <c>lora_dropout</c>), in [0, 1).</summary>
    public double Dropout { get; set; }

    /// <summary>Which biases train with the adapter (PEFT <c>bias</c>).</summary>
    public LoraBias Bias { get; set; } = LoraBias.None;

    /// <summary>rsLoRA scaling α/√r (PEFT <c>use_rslora</c>).</summary>
    public bool UseRsLora { get; set; }

    /// <summary>DoRA: a trainable magnitude vector per output row (PEFT <c>use_dora</c>).</summary>
    public bool UseDora { get; set; }

    /// <summary>How new adapters are initialised (PEFT <c>init_lora_weights</c>).</summary>
    public LoraInit Init { get; set; } = LoraInit.Default;

    /// <summary>Only layers with these indices are adapted (PEFT <c>layers_to_transform</c>): the index is the first
    /// <c>ModuleList</c> index in the module's path (3 in <c>model.layers.3.self_attn.q_proj</c>).</summary>
    public int[]? LayersToTransform { get; set; }

    public override LoraConfig ToConfig() => new()
    {
        R = R,
        LoraAlpha = Alpha,
        LoraDropout = Dropout,
        TargetModules = TargetModulesOf(Targets),
        Bias = Bias,
        UseRsLora = UseRsLora,
        UseDora = UseDora,
        InitLoraWeights = LoraInits.ToJsonText(Init),
        ModulesToSave = ModulesToSaveList(),
        LayersToTransform = LayersToTransform is null ? null : new LayerSelection(LayersToTransform.Distinct().Order().ToList(), []),
    };
}
