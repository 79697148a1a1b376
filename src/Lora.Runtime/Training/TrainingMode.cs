namespace Lora.Training;

/// <summary>Which parameters a run trains.</summary>
public enum TrainingMode
{
    /// <summary>Only the LoRA adapters (and the biases the adapter config's <c>bias</c> asks for); the base is frozen.</summary>
    Lora,

    /// <summary>Every parameter of the model (full fine-tuning); checkpoints hold the whole model.</summary>
    Full,

    /// <summary>The last <see cref="TrainingOptions.TopLayers"/> decoder blocks and the final norm; the embeddings,
    /// the other blocks and the output head stay frozen. Checkpoints hold the whole model.</summary>
    TopLayers,
}
