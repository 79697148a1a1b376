namespace Lora.Tuners.LoRA;

/// <summary>PEFT's <c>bias</c>: which biases train with the adapter.</summary>
public enum LoraBias
{
    /// <summary><c>"none"</c>: no bias trains.</summary>
    None,

    /// <summary><c>"all"</c>: every bias of the model trains (and is saved with the adapter).</summary>
    All,

    /// <summary><c>"lora_only"</c>: the biases of adapted layers train.</summary>
    LoraOnly,
}
