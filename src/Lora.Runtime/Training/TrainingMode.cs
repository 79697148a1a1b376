namespace Lora.Training;

/// <summary>Which parameters a run trains.</summary>
public enum TrainingMode
{
    /// <summary>Only the PEFT adapter (LoRA, IA3, ...) and what its config trains besides (LoRA's <c>bias</c>,
    /// <c>modules_to_save</c>); the base is frozen.</summary>
    Peft,

    /// <summary>Every parameter of the model (full fine-tuning); checkpoints hold the whole model.</summary>
    Full,

    /// <summary>The last <see cref="TrainingOptions.TopLayers"/> decoder blocks and the final norm; the embeddings,
    /// the other blocks and the output head stay frozen. Checkpoints hold the whole model.</summary>
    TopLayers,
}
